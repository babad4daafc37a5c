#!/usr/bin/env python3
"""A tiny authoritative DNS responder for the namespace tests of `tinyderp check`.

Answers A and AAAA queries for one name from the command line and NXDOMAIN for every
other name; it stands in for the DDNS provider. Runs only inside a test namespace.

    dns.py LISTEN_IP NAME [A|AAAA=ADDRESS ...]
"""
import ipaddress
import socket
import struct
import sys

TTL = 5


def parse_question(packet):
    """Returns (id, flags, qname_bytes, qtype, end offset) of the first question."""
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount < 1:
        raise ValueError("no question")
    pos = 12
    labels = []
    while True:
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed question")
        labels.append(packet[pos:pos + length].decode("ascii", "replace").lower())
        pos += length
    qtype, _qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return ident, flags, ".".join(labels), qtype, pos + 4


def answer(packet, name, records):
    ident, flags, qname, qtype, end = parse_question(packet)
    question = packet[12:end]
    rd = flags & 0x0100
    known = qname.rstrip(".") == name
    rcode = 0 if known else 3
    answers = []
    if known:
        for rtype, address in records:
            if rtype == qtype:
                rdata = address.packed
                answers.append(b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, TTL, len(rdata)) + rdata)
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd | rcode, 1, len(answers), 0, 0)
    return header + question + b"".join(answers)


def main():
    listen, name = sys.argv[1], sys.argv[2].lower().rstrip(".")
    records = []
    for item in sys.argv[3:]:
        kind, _, text = item.partition("=")
        records.append((1 if kind == "A" else 28, ipaddress.ip_address(text)))
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    print("dns: ready", flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(packet, name, records), peer)
        except (ValueError, IndexError, struct.error):
            continue


if __name__ == "__main__":
    main()
