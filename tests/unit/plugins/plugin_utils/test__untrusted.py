# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""untrusted(): what a guest wrote is never evaluated as a template, on the running ansible-core.

Run on every supported core: ``make unit-cores`` runs this file with ansible-core 2.17 and 2.18
($BUILD/cores), ``make unit`` with the default one (2.19+).
"""

from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.plugin_utils import _untrusted
from ansible_collections.virtkit.guests.plugins.plugin_utils._untrusted import untrusted
from ansible_collections.virtkit.guests.tests.unit.helpers import render

TEMPLATE = "{{ 'INJECTED-' ~ (6 * 7) }}"


def test_the_running_core_is_the_kind_the_helper_thinks():
    from ansible.release import __version__
    major, minor = (int(p) for p in __version__.split('.')[:2])
    assert _untrusted.DATA_TAGGING == ((major, minor) >= (2, 19))


def test_a_plain_string_from_a_host_var_is_evaluated_on_cores_without_data_tagging():
    """The control: what the helper guards against (on 2.17/2.18 this is the injection)."""
    value = render('owner', {'owner': TEMPLATE})
    assert value == (TEMPLATE if _untrusted.DATA_TAGGING else 'INJECTED-42')


def test_untrusted_values_stay_literal_nested_and_through_filters():
    data = untrusted({'metadata': {'owner': TEMPLATE, 'groups': ['g' + TEMPLATE, 'plain']},
                      'addresses': [{'interface': TEMPLATE, 'address': '192.168.122.5'}],
                      'config': {'lxc.group': [TEMPLATE]}, 'pair': (TEMPLATE, 1), 'none': None})
    variables = {'guest': data}
    assert render('guest.metadata.owner', variables) == TEMPLATE
    assert render('guest.metadata.groups', variables) == ['g' + TEMPLATE, 'plain']
    assert render('guest.addresses[0].interface', variables) == TEMPLATE
    assert render("guest.config['lxc.group'] | first | upper", variables) == TEMPLATE.upper()
    assert render("guest.metadata.owner ~ '!'", variables) == TEMPLATE + '!'
    assert render('guest.pair[0]', variables) == TEMPLATE
    assert data['none'] is None
    assert render('guest.addresses[0].address', variables) == '192.168.122.5'


def test_untrusted_keeps_the_values_equal_and_hashable():
    data = untrusted({'name': 'vk1', 'n': 3, 'flag': True, 'items': ['a']})
    assert data == {'name': 'vk1', 'n': 3, 'flag': True, 'items': ['a']}
    assert {untrusted('vk1'): 1}['vk1'] == 1
    if _untrusted.DATA_TAGGING:
        assert untrusted(TEMPLATE) is TEMPLATE  # nothing to do: core never trusts it
    else:
        from ansible.utils.unsafe_proxy import AnsibleUnsafeText
        assert isinstance(untrusted(TEMPLATE), AnsibleUnsafeText)
        assert isinstance(data['items'][0], AnsibleUnsafeText) and isinstance(list(data)[0], AnsibleUnsafeText)
