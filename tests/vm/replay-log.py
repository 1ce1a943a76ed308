#!/usr/bin/env python3
"""Replays a write log made by QEMU's blklogwrites block driver (the dm-log-writes format)
onto a copy of the disk as it was when the log began: what the disk holds after a power cut
that lost every write the guest had not flushed (or only some of them).

  replay-log.py LOG flushes           entry count up to and including each flush, one per line
  replay-log.py LOG count             the number of entries
  replay-log.py LOG find TEXT         entry count up to and including the last write whose
                                      data holds TEXT (0: none)
  replay-log.py LOG replay DISK N     writes entries 0..N-1 (data writes; flushes and
                                      discards change nothing on a disk image) into DISK

The format: a super block in the first log sector (magic, version, entry count, sector size),
then per entry a header sector (sector, sector count, flags, data length; little-endian u64s)
followed by its data, each padded to the log sector size. QEMU updates the super block's
count only now and then, so after a kill the entries are read until the log ends.
"""
import os
import struct
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8


def entries(path):
    with open(path, 'rb') as log:
        magic, version, _count, sector_size = struct.unpack('<QQQI', log.read(28))
        if magic != MAGIC or version != 1:
            sys.exit(f'{path}: not a blklogwrites log (magic {magic:#x}, version {version})')
        offset = sector_size
        while True:
            log.seek(offset)
            head = log.read(32)
            if len(head) < 32:
                return
            sector, nr_sectors, flags, data_len = struct.unpack('<QQQQ', head)
            if nr_sectors == 0 and flags == 0:
                return  # never written: the log ends here
            data_offset = offset + sector_size
            length = nr_sectors * sector_size if not flags & DISCARD else 0
            if data_len:
                length = data_len
            yield sector * sector_size, flags, data_offset, length
            offset = data_offset + -(-length // sector_size) * sector_size


def main():
    path, command = sys.argv[1], sys.argv[2]
    if command == 'count':
        print(sum(1 for _ in entries(path)))
    elif command == 'flushes':
        for i, (_, flags, _, _) in enumerate(entries(path)):
            if flags & FLUSH:
                print(i + 1)
    elif command == 'find':
        text, found = os.fsencode(sys.argv[3]), 0
        with open(path, 'rb') as log:
            for i, (_, flags, data_offset, length) in enumerate(entries(path)):
                if length and not flags & (DISCARD | MARK):
                    log.seek(data_offset)
                    if text in log.read(length):
                        found = i + 1
        print(found)
    elif command == 'replay':
        disk, upto = sys.argv[3], int(sys.argv[4])
        with open(path, 'rb') as log, open(disk, 'r+b') as out:
            for i, (at, flags, data_offset, length) in enumerate(entries(path)):
                if i >= upto:
                    break
                if flags & (DISCARD | MARK) or length == 0:
                    continue
                log.seek(data_offset)
                data = log.read(length)
                if len(data) != length:
                    sys.exit(f'{path}: entry {i} is cut short')
                out.seek(at)
                out.write(data)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
