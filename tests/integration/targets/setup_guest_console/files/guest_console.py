"""Run one shell command inside a tiny test guest, through its serial console.

The tiny guest of tests/images/build-tiny-image.sh keeps a root shell on ttyS0. This
opens that console through libvirt (virDomainOpenConsole, taking it over from any other
client), types the command between two markers and prints what the guest printed between
them; the exit status is the command's. It is how the integration tests read an outcome
from the guest's own side (its address, its DNS answers, its disk) rather than from the
host or from a module's return value.

    python guest_console.py [--uri URI] [--timeout SECONDS] DOMAIN COMMAND

A probe (an echo) is typed every few seconds until the shell answers it (right after a boot
it may not run yet), then COMMAND once. Lines the guest's init prints on its own ("virtkit-tiny: ...")
are left out. Exit 124 when the guest did not answer within the timeout.
"""
import argparse
import re
import sys
import threading
import time
import uuid

import libvirt

RETYPE_EVERY = 5.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--uri', default='qemu:///system')
    parser.add_argument('--timeout', type=float, default=90.0)
    parser.add_argument('domain')
    parser.add_argument('command')
    args = parser.parse_args()

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(args.uri)
    dom = conn.lookupByName(args.domain)
    # A blocking stream read by a thread: a non-blocking one would need a libvirt event
    # loop to receive anything between our own sends.
    stream = conn.newStream(0)
    dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    chunks = []
    lock = threading.Lock()

    def read():
        try:
            while True:
                data = stream.recv(65536)
                if not data or data == -2:
                    return
                with lock:
                    chunks.append(data)
        except libvirt.libvirtError:
            return

    reader = threading.Thread(target=read)
    reader.daemon = True
    reader.start()

    tag = uuid.uuid4().hex[:10]
    # The terminal echoes what is typed: the quotes split the markers in the echo, so only
    # the shell's output matches them. A cheap probe is typed until the shell answers it
    # (it may not run yet right after a boot), then the command once.
    probe = "echo VKR''%s\n" % tag
    line = "echo VKB''%s; %s; echo VKE''%s:$?\n" % (tag, args.command, tag)
    ready = re.compile(r'VKR%s\r?\n' % tag)
    pattern = re.compile(r'VKB%s\r?\n(.*?)VKE%s:(\d+)' % (tag, tag), re.S)
    buf = b''
    deadline = time.monotonic() + args.timeout
    next_probe = 0.0
    sent = False
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if not sent and now >= next_probe:
                # Ctrl-U drops whatever half line the console holds.
                stream.send(b'\x15' + probe.encode())
                next_probe = now + RETYPE_EVERY
            time.sleep(0.1)
            with lock:
                buf += b''.join(chunks)
                del chunks[:]
            if not reader.is_alive() and not chunks:
                break
            text = buf.decode('utf-8', 'replace')
            if not sent and ready.search(text):
                stream.send(line.encode())
                sent = True
            match = pattern.search(text)
            if match:
                lines = [
                    out for out in match.group(1).replace('\r', '').split('\n')
                    if not out.startswith('virtkit-tiny:')
                ]
                sys.stdout.write('\n'.join(lines).rstrip('\n') + '\n' if any(lines) else '')
                return int(match.group(2))
    finally:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass
        conn.close()
    sys.stderr.write('%s: no answer on the serial console within %ss; it printed:\n%s\n' % (
        args.domain, args.timeout, buf.decode('utf-8', 'replace')[-2000:]))
    return 124


if __name__ == '__main__':
    sys.exit(main())
