# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.virtkit.guests`` importable for plain pytest runs.

``scripts/setup-host.sh collection`` (run by ``make unit``) creates
``<repo>/.build/collections/ansible_collections/virtkit/guests -> <repo>``. When the
repository itself already sits at ``.../ansible_collections/virtkit/guests`` (as under
ansible-test), its grandparent's parent is used instead. The path is computed from this
file, so the suite runs from any checkout folder.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _collections_root():
    parts = REPO.split(os.sep)
    if len(parts) >= 3 and parts[-3:-1] == ['ansible_collections', 'virtkit'] and parts[-1] == 'guests':
        return os.sep.join(parts[:-3]) or os.sep
    build = os.environ.get('VIRTKIT_BUILD') or os.path.join(REPO, '.build')
    return os.path.join(build, 'collections')


ROOT = _collections_root()
_link = os.path.join(ROOT, 'ansible_collections', 'virtkit', 'guests')
if not os.path.isdir(_link):
    raise RuntimeError('%s is missing: run scripts/setup-host.sh collection (or make unit) first' % _link)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
