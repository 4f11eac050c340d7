# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strings read from guests are data, never templates: the one place that knows how each
ansible-core is told so (controller side only).

- ansible-core 2.19 and newer (data tagging): a string is evaluated as a template only when
  it is tagged as trusted (text from playbooks, var files and inventory files). What a plugin
  builds from a guest's XML, config or agent never is, so the value is returned as it is;
  ``wrap_var`` only strips that tag there and is deprecated.
- ansible-core 2.17 and 2.18: a plain ``str`` in a host variable is templated when a play
  reads it; ``wrap_var`` marks every string of the value (dict keys too) as
  ``AnsibleUnsafeText``, which core keeps through variables, filters, ``set_fact`` and
  ``add_host`` and never templates.
"""

from __future__ import annotations

try:
    from ansible.template import trust_as_template  # noqa: F401 pylint: disable=unused-import
except ImportError:  # ansible-core < 2.19: no data tagging
    from ansible.utils.unsafe_proxy import wrap_var
    DATA_TAGGING = False
else:
    wrap_var = None
    DATA_TAGGING = True


def untrusted(value):
    """``value`` (a string, or dicts/lists/tuples of them, nested) as data that no
    ansible-core evaluates as a template."""
    if DATA_TAGGING:
        return value
    return wrap_var(value)
