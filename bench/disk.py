#!/usr/bin/env python3
"""The disk that worktrees' shared directories add beyond the main worktree's: each inode
counted once (hard links to the same file count once), symlinks themselves included, against
as many full copies of the main one.

usage: disk.py MAIN_DIR WORKTREE_DIR... ; prints EXTRA_MIB|COPIES_MIB|PERCENT"""
import os, sys


def walk(top, seen):
    total = 0
    for root, dirs, files in os.walk(top):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for n in [root] + [os.path.join(root, f) for f in files + links]:
            st = os.lstat(n)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


main, others = sys.argv[1], sys.argv[2:]
seen = set()
full = walk(main, seen)
extra = sum(walk(d, seen) for d in others)
copies = len(others) * full
print("%.2f|%.1f|%.2f" % (extra / 2**20, copies / 2**20, 100.0 * extra / copies))
