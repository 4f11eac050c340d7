# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVRAM that no longer fits the firmware: planned (pure) and discarded (test driver).

The test driver keeps an explicit <loader>/<nvram> but drops secure boot features of a
guest without ``<os firmware='efi'>``; for those guests (whose NVRAM path only the QEMU
driver derives) the manager tests replace that one rule, ``default_nvram_path``.
"""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._domain import manager as mgr
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.plugins.module_utils._domain.plan import (
    LIVE_NS, Current, LiveRequests, build_plan)
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse
from ansible_collections.virtkit.guests.tests.unit.helpers import params, spec_of

NAME = 'vk-unit-nvram'
NVRAM = '/var/lib/libvirt/qemu/nvram/%s_VARS.fd' % NAME


def domain_xml(os_inner, machine='pc-q35-7.2', os_attr=" firmware='efi'", metadata='', name=NAME,
               dom_type='qemu', features=''):
    return ("<domain type='%s'><name>%s</name>%s<memory unit='KiB'>131072</memory><vcpu>1</vcpu>"
            "<os%s><type arch='x86_64' machine='%s'>hvm</type>%s</os><features><acpi/>%s</features>"
            "<devices/></domain>" % (dom_type, name, metadata, os_attr, machine, os_inner, features))


def sb(enabled):
    value = 'yes' if enabled else 'no'
    return ("<firmware><feature enabled='%s' name='enrolled-keys'/><feature enabled='%s' name='secure-boot'/>"
            "</firmware>" % (value, value))


SB_OFF = domain_xml(sb(False))
SB_ON = domain_xml(sb(True), features="<smm state='on'/>")
LIVE_SB_OFF = domain_xml(sb(False) + "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
                         "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>%s</nvram>" % NVRAM, os_attr='')


def record(path=NVRAM, fits=None, field='secure_boot'):
    fits = fits or xmerge.firmware_signature(parse(SB_OFF))
    return ("<metadata><virtkitlive:live xmlns:virtkitlive='%s'><virtkitlive:discard-nvram path='%s' for='%s' "
            "field='%s'/></virtkitlive:live></metadata>" % (LIVE_NS, path, fits, field))


def plan(state, cur_state, inactive, live=None, nvram=NVRAM, default_nvram=NVRAM, **options):
    spec = spec_of('pc-q35-7.2', name=NAME, state=state, **options)
    current = Current(NAME, True, cur_state, inactive, live, nvram=nvram, default_nvram=default_nvram)
    return build_plan(spec, current, virt_type='qemu')


def ops(p):
    return [a.op for a in p.actions]


def the_action(p, op):
    return next(a for a in p.actions if a.op == op)


# ------------------------------------------------------------------ signatures

def test_signature_tells_templates_apart():
    sig = xmerge.firmware_signature
    assert sig(parse(domain_xml('', os_attr=''))) == 'bios'
    assert sig(parse(SB_OFF)) == 'efi secure-boot=no enrolled-keys=no'
    assert sig(parse(SB_ON)) == 'efi secure-boot=yes enrolled-keys=yes'
    # Unset on q35: libvirt picks by priority (maybe a secure-boot template); on i440fx
    # no secure-boot firmware applies (it needs SMM), so unset is off there.
    assert sig(parse(domain_xml(''))) == 'efi secure-boot=auto enrolled-keys=auto'
    assert sig(parse(domain_xml('', machine='pc-i440fx-7.2'))) == sig(parse(domain_xml(sb(False), 'pc-i440fx-7.2')))
    explicit = domain_xml("<loader type='pflash'>/l.fd</loader><nvram template='/t.fd'>/n.fd</nvram>", os_attr='')
    # A pflash loader without secure='yes' is no secure-boot code; /t.fd tells nothing about keys.
    assert sig(parse(explicit)) == 'efi secure-boot=no enrolled-keys=auto loader=/l.fd template=/t.fd'


def test_live_requests_round_trip_the_nvram_record():
    requests = LiveRequests.read(parse(domain_xml(sb(False), metadata=record())))
    assert requests.nvram == {'path': NVRAM, 'for': 'efi secure-boot=no enrolled-keys=no', 'field': 'secure_boot'}
    root = parse(SB_OFF)
    requests.store(root)
    assert LiveRequests.read(root).nvram == requests.nvram
    requests.nvram = None
    requests.store(root)
    assert root.find('metadata') is None


# ------------------------------------------------------------------ planning: guest off

def test_off_guest_leaving_uefi_discards_its_nvram_after_the_define():
    p = plan('present', 'shutoff', SB_OFF, firmware='bios')
    assert ops(p) == ['define', 'discard_nvram']
    assert the_action(p, 'discard_nvram').params == {'path': NVRAM}
    assert 'leaves UEFI' in the_action(p, 'discard_nvram').summary
    assert LiveRequests.read(parse(p.merged_xml)).nvram['path'] == NVRAM  # retried if the discard fails


@pytest.mark.parametrize('before, secure', [(SB_OFF, True), (SB_ON, False)])
def test_off_guest_changing_secure_boot_discards_before_the_start(before, secure):
    p = plan('running', 'shutoff', before, firmware='uefi', secure_boot=secure)
    assert ops(p) == ['define', 'discard_nvram', 'start']
    assert 'another NVRAM template' in the_action(p, 'discard_nvram').summary


@pytest.mark.parametrize('before, options', [
    (SB_OFF, {'firmware': 'uefi', 'secure_boot': False}),  # rerun: same firmware
    (SB_OFF, {'firmware': 'uefi', 'memory': 64}),  # another change, same template
    (domain_xml('', os_attr=''), {'firmware': 'bios', 'memory': 64}),  # BIOS has no NVRAM
    (domain_xml('', machine='pc-i440fx-7.2'), {'firmware': 'uefi', 'secure_boot': False}),  # off was the default
])
def test_no_discard_while_the_template_stays(before, options):
    p = plan('present', 'shutoff', before, **options)
    assert 'discard_nvram' not in ops(p)
    assert p.merged_xml is None or LiveRequests.read(parse(p.merged_xml)).nvram is None


def test_unknown_nvram_path_warns_and_discards_nothing():
    p = plan('present', 'shutoff', SB_OFF, nvram=None, firmware='bios')
    assert ops(p) == ['define']
    assert len(p.warnings) == 1 and 'cannot tell which NVRAM file' in p.warnings[0]


def test_off_guest_with_a_recorded_request_discards_the_recorded_file():
    recorded = '/var/lib/libvirt/qemu/nvram/recorded.fd'  # the file its definition named then
    before = domain_xml(sb(True), metadata=record(path=recorded), features="<smm state='on'/>")
    p = plan('present', 'shutoff', before, nvram=recorded, firmware='uefi', secure_boot=True)
    assert ops(p) == ['discard_nvram']
    assert the_action(p, 'discard_nvram').params == {'path': recorded}
    # The same with another change: after the define.
    p = plan('present', 'shutoff', before, nvram=recorded, firmware='uefi', secure_boot=True, memory=64)
    assert ops(p) == ['define', 'discard_nvram']


def test_off_guest_changed_back_keeps_its_file_and_forgets_the_request():
    before = domain_xml(sb(True), metadata=record(), features="<smm state='on'/>")
    p = plan('present', 'shutoff', before, firmware='uefi', secure_boot=False)
    assert ops(p) == ['define', 'keep_nvram']


# ------------------------------------------------------------------ planning: guest running

def test_running_guest_records_the_file_in_its_persistent_config():
    p = plan('running', 'running', SB_OFF, live=LIVE_SB_OFF, firmware='uefi', secure_boot=True)
    assert ops(p) == ['define']
    assert p.pending_restart == ['secure_boot']
    assert 'is discarded once it is off' in the_action(p, 'define').summary
    assert LiveRequests.read(parse(p.merged_xml)).nvram == {
        'path': NVRAM, 'for': 'efi secure-boot=no enrolled-keys=no', 'field': 'secure_boot'}


def test_running_guest_restarted_by_policy_discards_between_stop_and_start():
    p = plan('running', 'running', SB_OFF, live=LIVE_SB_OFF, firmware='bios', restart_policy='if_needed')
    assert ops(p) == ['define', 'restart']
    assert the_action(p, 'restart').params == {'discard_nvram': NVRAM}


@pytest.mark.parametrize('state, stop', [('shutdown', 'shutdown'), ('destroyed', 'destroy')])
def test_running_guest_stopped_by_the_run_discards_after_the_stop(state, stop):
    p = plan(state, 'running', SB_OFF, live=LIVE_SB_OFF, firmware='bios')
    assert ops(p) == ['define', stop, 'discard_nvram']


def test_running_guest_with_a_request_still_waits_for_a_restart():
    # Restarted outside this module: the live config matches, the file is still stale.
    before = domain_xml(sb(True), metadata=record(), features="<smm state='on'/>")
    live = domain_xml(sb(True) + "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
                      "</loader><nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>%s</nvram>" % NVRAM,
                      metadata=record(), features="<smm state='on'/>", os_attr='')
    p = plan('running', 'running', before, live=live, firmware='uefi', secure_boot=True)
    assert ops(p) == [] and p.pending_restart == ['secure_boot']
    p = plan('running', 'running', before, live=live, firmware='uefi', secure_boot=True, restart_policy='if_needed')
    assert ops(p) == ['restart'] and the_action(p, 'restart').params == {'discard_nvram': NVRAM}


def test_running_guest_changed_back_drops_the_request():
    before = domain_xml(sb(True), metadata=record(), features="<smm state='on'/>")
    p = plan('running', 'running', before, live=LIVE_SB_OFF, firmware='uefi', secure_boot=False)
    assert ops(p) == ['define']
    assert LiveRequests.read(parse(p.merged_xml)).nvram is None


# ------------------------------------------------------------------ the manager on the test driver

@pytest.fixture
def conn():
    if libvirt is None:
        pytest.skip('libvirt-python is not installed')
    connection = Connection('test:///default')
    yield connection
    for dom in connection.conn.listAllDomains(0):
        if dom.name().startswith('virtkit-unit-nvram'):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    connection.close()


def run(conn, check=False, **options):
    options.setdefault('uri', 'test:///default')
    options.setdefault('name', 'virtkit-unit-nvram')
    return DomainManager(conn).run(params(**options), check_mode=check)


def result_ops(result):
    return [a['action'] for a in result['actions']]


def define_explicit(conn, path, name='virtkit-unit-nvram'):
    """A UEFI guest whose definition names its loader and NVRAM file."""
    xml = domain_xml("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
                     "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>%s</nvram>" % path,
                     os_attr='', name=name, dom_type='test')
    return conn.conn.defineXML(xml)


def persistent_record(conn, name='virtkit-unit-nvram'):
    dom = conn.conn.lookupByName(name)
    return LiveRequests.read(parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))).nvram


def test_off_guest_to_bios_unlinks_its_file_and_reruns_are_unchanged(conn, tmp_path):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    other = tmp_path / 'other_VARS.fd'
    other.write_bytes(b'vars')
    define_explicit(conn, str(nvram))
    check = run(conn, check=True, firmware='bios')
    assert result_ops(check) == ['define', 'discard_nvram'] and nvram.exists()
    done = run(conn, firmware='bios')
    assert result_ops(done) == ['define', 'discard_nvram'] and done['changed']
    assert not nvram.exists() and other.exists()
    assert run(conn, firmware='bios')['changed'] is False
    assert run(conn, check=True, firmware='bios')['changed'] is False


def test_a_volume_of_a_pool_goes_through_the_storage_api(conn):
    pool = conn.conn.storagePoolLookupByName('default-pool')
    vol = pool.createXML("<volume><name>virtkit-unit-nvram.fd</name><capacity>1024</capacity></volume>", 0)
    path = vol.path()
    define_explicit(conn, path)
    done = run(conn, firmware='bios')
    assert result_ops(done) == ['define', 'discard_nvram']
    assert conn.volume_by_path(path) is None


def test_a_remote_file_outside_every_pool_is_a_warning(conn, tmp_path, monkeypatch):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    define_explicit(conn, str(nvram))
    monkeypatch.setattr(Connection, 'is_local', property(lambda self: False))
    monkeypatch.setattr(conn, 'uri', 'qemu+ssh://kvm1.example.com/system')
    done = run(conn, firmware='bios')
    assert result_ops(done) == ['define', 'discard_nvram'] and not done['warnings'] == []
    assert len(done['warnings']) == 1
    assert str(nvram) in done['warnings'][0] and 'kvm1.example.com' in done['warnings'][0]
    assert nvram.exists()
    assert run(conn, firmware='bios')['changed'] is False  # warned once


def test_running_guest_keeps_its_file_until_it_is_shut_down(conn, tmp_path):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    define_explicit(conn, str(nvram)).create()
    changed = run(conn, firmware='bios', state='running')
    assert result_ops(changed) == ['define'] and changed['pending_restart_fields'] == ['firmware']
    assert nvram.exists() and persistent_record(conn)['path'] == str(nvram)
    again = run(conn, firmware='bios', state='running')
    assert not again['changed'] and again['pending_restart'] and nvram.exists()
    stopped = run(conn, firmware='bios', state='shutdown')
    assert result_ops(stopped) == ['shutdown', 'discard_nvram']
    assert not nvram.exists() and persistent_record(conn) is None
    assert run(conn, firmware='bios', state='shutdown')['changed'] is False


def test_a_later_run_finding_the_guest_off_discards(conn, tmp_path, monkeypatch):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    # The BIOS definition names no NVRAM: the record is trusted as libvirt's path for the name.
    monkeypatch.setattr(mgr, 'default_nvram_path', lambda connection, name: str(nvram))
    dom = define_explicit(conn, str(nvram))
    dom.create()
    run(conn, firmware='bios')
    dom.destroy()  # stopped outside this module
    later = run(conn, firmware='bios')
    assert result_ops(later) == ['discard_nvram'] and later['changed']
    assert not nvram.exists() and persistent_record(conn) is None
    assert run(conn, firmware='bios')['changed'] is False


def test_secure_boot_toggle_restarted_by_policy(conn, tmp_path, monkeypatch):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    monkeypatch.setattr(mgr, 'default_nvram_path', lambda connection, name: str(nvram))
    base = dict(firmware='uefi', machine='q35', state='running')
    run(conn, secure_boot=False, **base)
    dom_id = conn.conn.lookupByName('virtkit-unit-nvram').ID()
    restarted = run(conn, secure_boot=True, restart_policy='if_needed', **base)
    assert result_ops(restarted) == ['define', 'restart']
    assert 'discarding its NVRAM file %s' % nvram in restarted['actions'][1]['summary']
    assert not nvram.exists() and persistent_record(conn) is None
    assert conn.conn.lookupByName('virtkit-unit-nvram').ID() != dom_id
    assert not restarted['pending_restart']
    nvram.write_bytes(b'new vars')  # what libvirt makes at the start
    assert run(conn, secure_boot=True, restart_policy='if_needed', **base)['changed'] is False
    assert nvram.exists()


def test_default_nvram_path_is_known_for_the_system_instance_only():
    class Fake:
        def __init__(self, uri):
            self.uri = uri
            self.conn = None

    assert mgr.default_nvram_path(Fake('qemu:///system'), 'g') == '/var/lib/libvirt/qemu/nvram/g_VARS.fd'
    assert mgr.default_nvram_path(Fake('qemu+ssh://root@h/system'), 'g') == '/var/lib/libvirt/qemu/nvram/g_VARS.fd'
    assert mgr.default_nvram_path(Fake('qemu:///session'), 'g') is None
    assert mgr.default_nvram_path(Fake('test:///default'), 'g') is None


def test_a_discard_that_failed_after_the_define_is_retried(conn, tmp_path, monkeypatch):
    nvram = tmp_path / 'guest_VARS.fd'
    nvram.write_bytes(b'vars')
    monkeypatch.setattr(mgr, 'default_nvram_path', lambda connection, name: str(nvram))
    define_explicit(conn, str(nvram))
    real = mgr.os.unlink

    def refuse(path):
        raise OSError(13, 'Permission denied')

    monkeypatch.setattr(mgr.os, 'unlink', refuse)
    with pytest.raises(mgr.VirtkitError, match='cannot discard the NVRAM file'):
        run(conn, firmware='bios')
    assert nvram.exists() and persistent_record(conn)['path'] == str(nvram)
    monkeypatch.setattr(mgr.os, 'unlink', real)
    again = run(conn, firmware='bios')
    assert result_ops(again) == ['discard_nvram'] and not nvram.exists() and persistent_record(conn) is None
    assert run(conn, firmware='bios')['changed'] is False


# ------------------------------------------------------------------ secure boot left unset ('auto' on q35)

AUTO = domain_xml('')  # q35, UEFI, secure_boot never set: libvirt picked the firmware by priority
LIVE_MS = domain_xml("<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
                     "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>%s</nvram>" % NVRAM,
                     os_attr='', features="<smm state='on'/>")
LIVE_PLAIN = domain_xml("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
                        "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>%s</nvram>" % NVRAM, os_attr='')


def test_selected_firmware_tells_secure_boot_and_keys():
    sel = xmerge.selected_secure_boot
    assert sel(parse(LIVE_MS).find('os')) == {'secure-boot': 'yes', 'enrolled-keys': 'yes'}
    assert sel(parse(LIVE_PLAIN).find('os')) == {'secure-boot': 'no', 'enrolled-keys': 'no'}
    fedora = domain_xml("<loader secure='yes' type='pflash'>/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd</loader>"
                        "<nvram template='/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd'>/n.fd</nvram>", os_attr='')
    assert sel(parse(fedora).find('os')) == {'secure-boot': 'yes', 'enrolled-keys': 'yes'}
    assert sel(parse(AUTO).find('os')) == {}
    assert sel(parse(domain_xml("<nvram template='/srv/mine.fd'>/n.fd</nvram>")).find('os')) == {}


def test_off_guest_with_unknown_auto_firmware_keeps_its_file_with_one_warning():
    p = plan('present', 'shutoff', AUTO, firmware='uefi', secure_boot=True)
    assert ops(p) == ['define']  # the features only; the NVRAM file may hold what the user needs
    assert LiveRequests.read(parse(p.merged_xml)).nvram is None
    assert len(p.warnings) == 1 and 'secure_boot: libvirt chose the firmware while secure_boot was unset' \
        in p.warnings[0] and NVRAM in p.warnings[0] and 'delete it while the guest is off' in p.warnings[0]


def test_running_guest_auto_resolved_from_its_live_xml_keeps_a_matching_file():
    # Debian q35 picks the enrolled secure-boot firmware: secure_boot true changes no template.
    p = plan('running', 'running', AUTO, live=LIVE_MS, firmware='uefi', secure_boot=True, restart_policy='if_needed')
    assert LiveRequests.read(parse(p.merged_xml)).nvram is None and not p.warnings
    assert all('discard_nvram' not in a.params for a in p.actions)


def test_running_guest_auto_resolved_from_its_live_xml_discards_a_stale_file():
    p = plan('running', 'running', AUTO, live=LIVE_PLAIN, firmware='uefi', secure_boot=True)
    assert LiveRequests.read(parse(p.merged_xml)).nvram == {
        'path': NVRAM, 'for': 'efi secure-boot=no enrolled-keys=no', 'field': 'secure_boot'}
    assert 'secure_boot' in p.pending_restart


# ------------------------------------------------------------------ libvirt >= 9.2: the selection in the inactive XML

def selected_92(secure):
    """The inactive XML libvirt 9.2 writes for <os firmware='efi'> with secure boot unset."""
    code, vars_ = ('OVMF_CODE_4M.ms.fd', 'OVMF_VARS_4M.ms.fd') if secure else ('OVMF_CODE_4M.fd', 'OVMF_VARS_4M.fd')
    return domain_xml("<loader readonly='yes' secure='%s' type='pflash' format='raw'>/usr/share/OVMF/%s</loader>"
                      "<nvram template='/usr/share/OVMF/%s' templateFormat='raw' format='raw'>%s</nvram>"
                      % ('yes' if secure else 'no', code, vars_, NVRAM), features="<smm state='on'/>" if secure else '')


def test_92_selection_that_matches_is_kept_and_nothing_discarded():
    p = plan('present', 'shutoff', selected_92(True), firmware='uefi', secure_boot=True)
    merged = parse(p.merged_xml)
    assert merged.find('os/loader').text == '/usr/share/OVMF/OVMF_CODE_4M.ms.fd'
    assert merged.find('os/nvram').get('template') == '/usr/share/OVMF/OVMF_VARS_4M.ms.fd'
    assert ops(p) == ['define'] and not p.warnings


def test_92_selection_that_secure_boot_flips_is_dropped_for_libvirt_to_select_again():
    p = plan('present', 'shutoff', selected_92(True), firmware='uefi', secure_boot=False)
    os_el = parse(p.merged_xml).find('os')
    assert os_el.find('loader') is None
    nvram = os_el.find('nvram')
    assert nvram.text == NVRAM and nvram.get('template') is None and nvram.get('templateFormat') is None
    assert nvram.get('format') == 'raw'
    assert ops(p) == ['define', 'discard_nvram']
    assert LiveRequests.read(parse(p.merged_xml)).nvram['field'] == 'secure_boot'
    # Explicit features that flip drop the selection too.
    before = selected_92(False).replace('<loader', sb(False) + '<loader')
    p = plan('present', 'shutoff', before, firmware='uefi', secure_boot=True)
    assert parse(p.merged_xml).find('os/loader') is None and ops(p) == ['define', 'discard_nvram']


def test_92_loader_set_by_xml_overrides_is_left_alone():
    override = [{'xpath': '/domain/os/loader', 'value': '/usr/share/OVMF/OVMF_CODE_4M.ms.fd'}]
    p = plan('present', 'shutoff', selected_92(True), firmware='uefi', secure_boot=False, xml_overrides=override)
    merged = parse(p.merged_xml)
    assert merged.find('os/loader') is not None
    assert merged.find('os/nvram').get('template') == '/usr/share/OVMF/OVMF_VARS_4M.ms.fd'


# ------------------------------------------------------------------ the recorded path is checked

def test_a_recorded_file_that_is_not_the_guests_is_dropped_not_deleted():
    before = domain_xml(sb(True), metadata=record(path='/etc/passwd'), features="<smm state='on'/>")
    p = plan('present', 'shutoff', before, firmware='uefi', secure_boot=True)
    assert ops(p) == ['define'] and LiveRequests.read(parse(p.merged_xml)).nvram is None
    assert len(p.warnings) == 1 and '/etc/passwd' in p.warnings[0] and 'nothing deleted' in p.warnings[0]
    p = plan('present', 'running', before, live=LIVE_MS, firmware='uefi', secure_boot=True, restart_policy='if_needed')
    assert all('discard_nvram' not in a.params for a in p.actions)


def test_a_foreign_recorded_file_survives_on_the_test_driver(conn, tmp_path):
    foreign = tmp_path / 'precious'
    foreign.write_bytes(b'data')
    xml = domain_xml("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
                     "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>%s</nvram>" % (tmp_path / 'guest_VARS.fd'),
                     os_attr='', name='virtkit-unit-nvram', dom_type='test', metadata=record(path=str(foreign)))
    conn.conn.defineXML(xml)
    done = run(conn, firmware='bios')
    assert foreign.exists() and persistent_record(conn) is None
    assert any(str(foreign) in w for w in done['warnings'])


# ------------------------------------------------------------------ no libvirt call for a path nobody needs

def test_reading_an_unchanged_uefi_guest_derives_no_nvram_path(conn, monkeypatch):
    base = dict(firmware='uefi', machine='q35', secure_boot=False)
    run(conn, **base)
    calls = []
    monkeypatch.setattr(mgr, 'default_nvram_path', lambda connection, name: calls.append(name))
    assert run(conn, **base)['changed'] is False
    assert run(conn, memory=64, **base)['changed'] is True
    assert calls == []


def test_default_nvram_path_asks_libvirt_only_for_the_default_uri():
    class Conn:
        def getURI(self):
            self.asked = True
            return 'qemu:///system'

    class Fake:
        def __init__(self, uri):
            self.uri = uri
            self.conn = Conn()

    named = Fake('qemu:///system')
    assert mgr.default_nvram_path(named, 'g') == '/var/lib/libvirt/qemu/nvram/g_VARS.fd'
    assert not hasattr(named.conn, 'asked')
    default = Fake('')
    assert mgr.default_nvram_path(default, 'g') == '/var/lib/libvirt/qemu/nvram/g_VARS.fd' and default.conn.asked


def test_a_template_named_by_overrides_that_changes_is_discarded_even_with_auto():
    before = domain_xml("<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>")
    override = [{'xpath': '/domain/os/nvram', 'attributes': {'template': '/usr/share/OVMF/OVMF_VARS_4M.ms.fd'}}]
    p = plan('present', 'shutoff', before, firmware='uefi', xml_overrides=override)
    assert ops(p) == ['define', 'discard_nvram'] and not p.warnings
