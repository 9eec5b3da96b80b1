"""The case database's tables, and the columns an older case gains when it is opened.

Kept apart from ``database.py`` (the queries) so that the shape of a case reads in one
place: the core tables, the feature tables a case of any age gets on open (video matches,
carve ranges), and the columns added since schema 1.
"""

SCHEMA_VERSION = 6  # 2: PDQ columns, known entries, near matches, media groups
#                    3: volumes keyed by (evidence, index, fs_slot): several filesystems
#                    4: derived entries (files.parent_id, files.derivation)
#                    5: evidence named before its hash (hash columns NULL until known)
#                    6: PDQ and vPDQ columns filled when a result is stored (an older
#                       case's are filled from its records once, on open)

# The results' hash indexes serve matching and proofs, after the analysis. Random hex keys
# make every insert into them a random page write, so the analysis runs without them and
# they are built once at its end (pipeline/case/indexes.py; a case opened after a kill
# builds them on open, where it can: database.CaseDatabase).
RESULT_HASH_INDEX_NAMES = ("results_md5", "results_sha1", "results_sha256")
RESULT_HASH_INDEXES = """
CREATE INDEX IF NOT EXISTS results_md5 ON results(md5);
CREATE INDEX IF NOT EXISTS results_sha1 ON results(sha1);
CREATE INDEX IF NOT EXISTS results_sha256 ON results(sha256);
"""

# The pictures and the videos among the results (partial indexes: only their rows), so
# the near-duplicate grouping at the end of a run reads those rows and not every result
# (issue 18: 100,000 text files, ~0.1 s). A query uses them when its WHERE repeats the
# condition and it reads ``results`` first (``results r CROSS JOIN files f``).
PICTURES_CONDITION = "phash IS NOT NULL OR pdq IS NOT NULL"
VIDEOS_CONDITION = "vpdq IS NOT NULL"
MEDIA_RESULT_INDEXES = (
    f"CREATE INDEX IF NOT EXISTS results_pictures ON results(file_id) WHERE {PICTURES_CONDITION}",
    f"CREATE INDEX IF NOT EXISTS results_videos ON results(file_id) WHERE {VIDEOS_CONDITION}",
)

# Indexes on columns added since schema 1: an older case gets them on open, after the
# columns they name (database.CaseDatabase._migrate); a new case with its tables.
LATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS files_parent ON files(parent_id)",
    "CREATE INDEX IF NOT EXISTS files_by_inode"  # shadow copies
    " ON files(evidence_id, volume_offset, inode)",
    *MEDIA_RESULT_INDEXES,
)

EVIDENCE_TABLE = """
CREATE TABLE IF NOT EXISTS evidence (
    id TEXT PRIMARY KEY,                 -- ev- + hash of format and paths (schema < 5: SHA-256)
    format TEXT NOT NULL,
    paths TEXT NOT NULL,                 -- JSON list of the container's files
    size INTEGER NOT NULL,
    md5 TEXT, sha1 TEXT, sha256 TEXT,    -- the media's; NULL while the hash still runs
    stored_hashes TEXT NOT NULL,         -- JSON: hashes the container itself records (E01)
    expected_hashes TEXT NOT NULL,       -- JSON: hashes the examiner stated
    verification TEXT NOT NULL,          -- JSON list of comparisons
    verified INTEGER,                    -- 1 when every comparison matched; NULL: not yet
    container_stat TEXT NOT NULL,        -- JSON: size and mtime of each container file
    registered_at TEXT NOT NULL,
    walk_complete INTEGER NOT NULL DEFAULT 0,
    partition_table TEXT
);"""

VOLUMES_TABLE = """
CREATE TABLE IF NOT EXISTS volumes (
    evidence_id TEXT NOT NULL REFERENCES evidence(id),
    idx INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    description TEXT NOT NULL,
    allocated INTEGER NOT NULL,
    fs_type TEXT,
    status TEXT NOT NULL,                -- walked | no-filesystem | not-allocated | stalled
    detail TEXT NOT NULL,                -- JSON: walk counts or the reason it was not walked
    fs_slot INTEGER NOT NULL DEFAULT 0,  -- which filesystem of the volume (0, 1 when two)
    PRIMARY KEY (evidence_id, idx, fs_slot)
);"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS case_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""" + EVIDENCE_TABLE + """
""" + VOLUMES_TABLE + """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    entry_key TEXT NOT NULL UNIQUE,
    evidence_id TEXT NOT NULL REFERENCES evidence(id),
    volume_index INTEGER NOT NULL,
    volume_offset INTEGER NOT NULL,
    fs_type TEXT NOT NULL,
    inode INTEGER NOT NULL,
    path TEXT NOT NULL,
    stream TEXT,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    allocated INTEGER NOT NULL,
    mtime TEXT, atime TEXT, ctime TEXT, crtime TEXT,
    mode INTEGER, uid INTEGER, gid INTEGER,
    meta_allocated INTEGER,
    notes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_evidence ON files(evidence_id, volume_offset, id);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    evidence_id TEXT NOT NULL,
    volume_offset INTEGER NOT NULL,
    file_ids TEXT NOT NULL,              -- JSON list, in order
    bytes INTEGER NOT NULL,
    status TEXT NOT NULL,                -- planned | done
    merkle_root TEXT,
    worker TEXT,                         -- JSON: host and library versions of the worker
    ledger_seq INTEGER                   -- the ledger entry that covers this batch
);
CREATE TABLE IF NOT EXISTS results (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    batch_id TEXT NOT NULL REFERENCES batches(id),
    leaf_index INTEGER NOT NULL,         -- position in the batch's Merkle tree
    record TEXT NOT NULL,                -- canonical JSON of the result record
    md5 TEXT, sha1 TEXT, sha256 TEXT,
    mime TEXT, magic TEXT, extension_mismatch INTEGER,
    exif TEXT, phash TEXT, dhash TEXT,
    pdq TEXT, pdq_quality INTEGER,       -- copied from the record when it is stored
    pdq_dihedral TEXT,                   -- JSON list of the 8 rotation/mirror hashes
    vpdq TEXT,                           -- a video's frames: JSON list of "pdq,quality,time"
    vpdq_step REAL                       -- its seconds per hashed frame
);

CREATE INDEX IF NOT EXISTS results_by_batch ON results(batch_id);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY,
    evidence_id TEXT,
    file_id INTEGER REFERENCES files(id),
    batch_id TEXT,
    stage TEXT NOT NULL,                 -- acquire | volumes | walk | analyze | hashset
    analyzer TEXT,
    analyzer_version TEXT,
    error TEXT NOT NULL,                 -- exception type or short code
    message TEXT NOT NULL,
    traceback TEXT,
    location TEXT                        -- JSON evidence location when there is one
);
CREATE INDEX IF NOT EXISTS errors_by_file ON errors(file_id);
CREATE INDEX IF NOT EXISTS errors_by_batch ON errors(batch_id);
CREATE TABLE IF NOT EXISTS hashsets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    counts TEXT NOT NULL,                -- JSON: entries per algorithm, rejected lines
    loaded_at TEXT NOT NULL,
    version TEXT,                        -- the set's own version (VICS data model, NSRL RDS)
    kind TEXT NOT NULL DEFAULT 'alert',  -- alert (known material) | known-good (e.g. NSRL)
    category_profile TEXT                -- JSON: profile name and number -> label map
);
CREATE TABLE IF NOT EXISTS known_entries (
    id INTEGER PRIMARY KEY,              -- the known entry id that matches point to
    hashset_id INTEGER NOT NULL REFERENCES hashsets(id),
    ref TEXT NOT NULL,                   -- where in the set: "line 12", "value[3]", MediaID
    media_id TEXT,                       -- the set's own id (VICS MediaID), as given
    category TEXT,                       -- the original value, never rewritten
    series TEXT,
    precategorized INTEGER,
    details TEXT                         -- JSON: file names, sizes, descriptions
);
CREATE TABLE IF NOT EXISTS known_hashes (
    hashset_id INTEGER NOT NULL REFERENCES hashsets(id),
    algorithm TEXT NOT NULL,
    value TEXT NOT NULL,
    category TEXT,
    entry_id INTEGER REFERENCES known_entries(id)
);
CREATE INDEX IF NOT EXISTS known_by_value ON known_hashes(algorithm, value);
CREATE TABLE IF NOT EXISTS matches (
    file_id INTEGER NOT NULL REFERENCES files(id),
    hashset_id INTEGER NOT NULL REFERENCES hashsets(id),
    algorithm TEXT NOT NULL,
    distance INTEGER NOT NULL,
    category TEXT,
    known_value TEXT NOT NULL,
    known_id INTEGER,                    -- known_entries.id
    category_label TEXT,                 -- from the set's category profile
    variant TEXT,                        -- PDQ: which rotation/mirror of the file matched
    UNIQUE (file_id, hashset_id, algorithm, known_value)
);
CREATE TABLE IF NOT EXISTS media_groups (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    evidence_id TEXT NOT NULL,
    group_id INTEGER NOT NULL,           -- the smallest file id in the group
    size INTEGER NOT NULL,               -- images in the group
    algorithm TEXT NOT NULL,             -- what linked this file into the group
    distance INTEGER NOT NULL            -- its smallest distance to another member
);
"""


# Video matching (issue 15): how much of a video matched a known video (vPDQ), and where.
# A table of its own, created on open of any case (new or old), so it needs no migration.
VIDEO_SCHEMA = """
CREATE TABLE IF NOT EXISTS video_matches (
    file_id INTEGER NOT NULL REFERENCES files(id),
    hashset_id INTEGER NOT NULL REFERENCES hashsets(id),
    known_id INTEGER NOT NULL,           -- known_entries.id: the known video
    query_pct REAL NOT NULL,             -- % of this video's frames found in the known one
    compared_pct REAL NOT NULL,          -- % of the known video's frames found in this one
    frames INTEGER NOT NULL,             -- frames of this video compared (quality-filtered)
    known_frames INTEGER NOT NULL,
    ranges TEXT NOT NULL,                -- JSON [[start, end], ...] seconds of this video
    known_ranges TEXT NOT NULL,          -- JSON, seconds of the known video
    UNIQUE (file_id, hashset_id, known_id)
);
"""
# Carving (issue 14): each carve range is a pseudo-entry ``files`` row (kind 'other',
# path /$Unallocated/…) whose image runs, lookahead included, are kept here for the task.
# A table of its own, created if missing: an older case gains it without a migration step.
CARVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS carve_ranges (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    runs TEXT NOT NULL,                  -- JSON [[image offset, length], ...] in view order
    stop INTEGER NOT NULL,               -- view bytes the range owns; the rest is lookahead
    mode TEXT NOT NULL                   -- pictures | all
);"""


ADDED_COLUMNS = (  # schema 1 -> 2
    ("results", "pdq", "TEXT"), ("results", "pdq_quality", "INTEGER"),
    ("results", "pdq_dihedral", "TEXT"),
    ("hashsets", "version", "TEXT"), ("hashsets", "kind", "TEXT NOT NULL DEFAULT 'alert'"),
    ("hashsets", "category_profile", "TEXT"),
    ("known_hashes", "entry_id", "INTEGER"),
    ("matches", "known_id", "INTEGER"), ("matches", "category_label", "TEXT"),
    ("matches", "variant", "TEXT"),
    # schema 2 -> 3: an entry derived from another's content (archive member, embedded
    # picture …) names its parent and the derivation chain from the filesystem entry.
    ("files", "parent_id", "INTEGER REFERENCES files(id)"), ("files", "derivation", "TEXT"),
    # Volume shadow copies (issue 16): an entry walked in a snapshot of its volume names
    # it (JSON {index, id, created}); ``same_as`` is the live entry whose bytes it shares,
    # proven at walk time, analysed once for both (ingest/layers/snapshots.py).
    ("files", "snapshot", "TEXT"), ("files", "same_as", "INTEGER REFERENCES files(id)"),
    # schema 5 -> 6: a video's frame hashes beside the PDQ columns (filled on open).
    ("results", "vpdq", "TEXT"), ("results", "vpdq_step", "REAL"),
)

# Schema 5 -> 6: what matching reads, copied from the stored records once (a case of
# schema 6 has it from the moment each result is stored; issue 18: no pass over every
# record's JSON at the end of each run).
FILL_MEDIA_COLUMNS = """
UPDATE results SET
    pdq = json_extract(record, '$.findings.perceptual.pdq'),
    pdq_quality = json_extract(record, '$.findings.perceptual.pdq_quality'),
    pdq_dihedral = json_extract(record, '$.findings.perceptual.pdq_dihedral')
    WHERE pdq IS NULL AND json_extract(record, '$.findings.perceptual.pdq') IS NOT NULL;
UPDATE results SET
    vpdq = json_extract(record, '$.findings.video.vpdq'),
    vpdq_step = json_extract(record, '$.findings.video.seconds_per_hash')
    WHERE vpdq IS NULL AND json_extract(record, '$.findings.video.vpdq') IS NOT NULL;
"""
