"""Mutational fuzzing of evidence: disk images and media files, and the harness that runs
every case through the same code path as ``exhibit triage`` and checks what must hold.

Used by ``tests/test_fuzz.py`` (a brief run in CI) and ``benchmarks/robustness`` (the long
run). Base images are built with the same Debian tools as the sample generator
(mkfs.fat/mtools, mke2fs -d/debugfs, mkntfs/ntfscp, sfdisk); mutations target the
structures (boot sectors, FAT tables, superblocks, group descriptors, inode tables, MFT
records, directory entries, partition tables), not only random offsets.
"""
