# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_fleet: a declarative list of KVM guests and LXC containers, converged together.

``spec`` validates the list and translates every guest into the params dicts of the
existing single-resource managers; ``engine`` runs those managers in phases (shared base
images, then one thread per guest, then one wait for all addresses) and builds results.
"""
