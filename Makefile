# exhibit — the two set-up commands of the README, and the pieces they are made of.
#   make demo   installs what is missing, triages the bundled sample image, verifies the ledger
#   make test   installs what is missing (incl. the oracle tools), runs ruff and the full test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian/Ubuntu packages: libmagic1 is needed at run time, libewf2 reads E01 media ~9x faster
# than pyewf's own inflate (ingest/formats/libewf_native.py; g++ and python3-dev build pdqhash,
# which PyPI ships as source only); the rest are the generator's and
# the tests' reference tools (The Sleuth Kit, hashdeep, exiftool, file, ewfacquire, mtools...;
# qemu-img, mkapfs and cryptsetup make the containers exhibit must name but cannot read; tar,
# 7z, cpio, xorriso, gsf and qpdf write the container readers' test inputs).
# ffmpeg makes the video tests' clips; the libav*-dev headers build the reference vpdq hasher.
RUNTIME_PACKAGES := libmagic1 libarchive13 libewf2 g++ python3-dev
TEST_PACKAGES := $(RUNTIME_PACKAGES) sleuthkit hashdeep libimage-exiftool-perl file ewf-tools \
	mtools dosfstools e2fsprogs fdisk ntfs-3g exfatprogs gzip coreutils poppler-utils chromium \
	zip qemu-utils apfsprogs cryptsetup-bin tar bzip2 xz-utils p7zip-full cpio xorriso libgsf-bin \
	qpdf dmg2img ffmpeg pkg-config libavcodec-dev libavformat-dev libswscale-dev libavutil-dev \
	testdisk gcc

DEMO_IMAGE := build/sample.dd
DEMO_CASE  := demo-case

.PHONY: demo test lint bench fuzz system-deps-run system-deps-test venv clean

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef

system-deps-run:
	$(call apt_install,$(RUNTIME_PACKAGES))

system-deps-test:
	$(call apt_install,$(TEST_PACKAGES))

$(BIN)/exhibit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# The bytecode of exhibit's own packages (those pyproject.toml installs; tests/test_layout.py
# checks the list), written as a regular install writes it: the editable install does not,
# and where PYTHONDONTWRITEBYTECODE is set (CI containers) every process of a triage would
# compile them at its start (five processes, ~0.15 s each). Up-to-date files are skipped;
# a stale one is only ignored.
PACKAGES := pipeline ingest analyzers chain_of_custody
venv: $(BIN)/exhibit
	@$(BIN)/python -m compileall -q $(PACKAGES)

$(DEMO_IMAGE): sample_data/sample.img.gz
	@mkdir -p build
	gzip -dc $< > $@.tmp && chmod 0444 $@.tmp && mv -f $@.tmp $@

DEMO_EXAMINER := --examiner "Demo Examiner"

demo: system-deps-run venv $(DEMO_IMAGE)
	rm -rf $(DEMO_CASE)
	$(BIN)/exhibit evidence register $(DEMO_CASE) $(DEMO_IMAGE) --exhibit-number DEMO-001 \
		--description "Bundled sample image: camera card and data disk" --seal S-0001 \
		--authority "demonstration only" --location "build/" $(DEMO_EXAMINER) --create-key
	$(BIN)/exhibit triage $(DEMO_IMAGE) --case $(DEMO_CASE) $(DEMO_EXAMINER) \
		--hashset sample_data/known_hashes.txt --hashset sample_data/known_hashes.csv \
		--hashset sample_data/known_media.csv
	$(BIN)/exhibit ledger verify $(DEMO_CASE)
	$(BIN)/exhibit export $(DEMO_CASE) --format jsonl -o $(DEMO_CASE)/files.jsonl $(DEMO_EXAMINER)
	$(BIN)/exhibit ledger export $(DEMO_CASE) --format json -o $(DEMO_CASE)/custody.json $(DEMO_EXAMINER)
	$(BIN)/exhibit ledger export $(DEMO_CASE) --format pdf -o $(DEMO_CASE)/custody.pdf $(DEMO_EXAMINER)
	$(BIN)/python -m chain_of_custody.verify -q $(DEMO_CASE)/custody.json
	@echo "Case written to $(DEMO_CASE)/ (database case.sqlite, ledger ledger.jsonl, files.jsonl,"
	@echo "custody report custody.pdf, self-contained signed ledger custody.json)"

lint: venv
	$(BIN)/ruff check .

test: system-deps-test venv lint
	$(BIN)/pytest -q

# Speed benchmarks (benchmarks/speed/): builds the images once into ~/.cache/exhibit-bench
# ($$EXHIBIT_BENCH_CACHE), then times exhibit, fiwalk, tsk_loaddb, a naive script, the
# same-work script and the physical-limit probe on each, and libmagic's cost by check.
# Smaller run: make bench BENCH_ARGS="--scale 0.1"
# Then the archive benchmark (benchmarks/archives/): 2,000 zips of 3 photos vs the same
# photos unpacked. Smaller: make bench ARCHIVE_BENCH_ARGS="--zips 200"
# Then the video benchmark (benchmarks/video/): frames hashed per second and real-time
# factor per core on SD and HD clips. Shorter: make bench VIDEO_BENCH_ARGS="--seconds 10"
# Then the virtual-disk benchmark (benchmarks/vdisk/): the photos image as raw and as VMDK.
# Then the scaling benchmark (benchmarks/scaling/): the photos image on 1 and 2 workers,
# local file vs object storage (moto on 127.0.0.1), and the driver's time per batch.
# Then carving (benchmarks/carving/): a 2 GB wiped card with pictures, exhibit's carve scan
# vs dd and PhotoRec (testdisk). Smaller: make bench CARVE_BENCH_ARGS="--size 256"
# Then the driver (benchmarks/driver/): CPU per result record, phase by phase, exact
# rfc8785 vs canonical_bytes on the many-small image. Smaller: DRIVER_BENCH_ARGS="--scale 0.02"
# Then a slow disk (benchmarks/speed/slow_disk.py): the sample image with every fsync made
# 10 ms long. Against another tree: SLOW_DISK_BENCH_ARGS="--baseline-source DIR"
BENCH_ARGS ?=
ARCHIVE_BENCH_ARGS ?=
VIDEO_BENCH_ARGS ?=
VDISK_BENCH_ARGS ?=
SCALING_BENCH_ARGS ?=
CARVE_BENCH_ARGS ?=
DRIVER_BENCH_ARGS ?=
SLOW_DISK_BENCH_ARGS ?=
bench: system-deps-test venv
	$(BIN)/python benchmarks/speed/run.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/speed/libmagic_cost.py
	$(BIN)/python benchmarks/archives/run.py $(ARCHIVE_BENCH_ARGS)
	$(BIN)/python benchmarks/carving/run.py $(CARVE_BENCH_ARGS)
	$(BIN)/python benchmarks/video/run.py $(VIDEO_BENCH_ARGS)
	$(BIN)/python benchmarks/vdisk/run.py $(VDISK_BENCH_ARGS)
	$(BIN)/python benchmarks/scaling/run.py $(SCALING_BENCH_ARGS)
	$(BIN)/python benchmarks/driver/run.py $(DRIVER_BENCH_ARGS)
	$(BIN)/python benchmarks/speed/slow_disk.py $(SLOW_DISK_BENCH_ARGS)

# Robustness fuzzing (benchmarks/robustness/): mutated disk images and hostile media through
# triage; prints cases, crashes/hangs contained, files recovered, lost (must be 0).
# Shorter: make fuzz FUZZ_ARGS="--image-cases 200 --vdisk-cases 200 --media-cases 200"
FUZZ_ARGS ?= --image-cases 2000 --vdisk-cases 1000 --media-cases 2000
fuzz: system-deps-test venv $(DEMO_IMAGE)
	$(BIN)/python -m benchmarks.robustness $(FUZZ_ARGS)

clean:
	rm -rf build $(DEMO_CASE) .pytest_cache
