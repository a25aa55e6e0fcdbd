"""The command line every test-model generator here shares (gen_bert.py, gen_tf_layouts.py):
one model from the options, or `--batch_file FILE` with one set of options per line (`#` comments
and blank lines skipped), the command line's own options acting as defaults that a line may
override. Prints each model's path on its own line, in the order of the file."""

import shlex
import sys
from pathlib import Path


def _without_batch_file(argv):
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--batch_file":
            skip = True
        elif not word.startswith("--batch_file="):
            out.append(word)
    return out


def run(parser, generate, argv=None):
    """`parser` must define --batch_file; `generate(args)` returns the model's path."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if not args.batch_file:
        print(generate(args), flush=True)
        return
    # Each line is parsed after the command line's own options, so those act as defaults.
    base = _without_batch_file(argv)
    lines = Path(args.batch_file).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if any(w.startswith("--batch_file") for w in words):
            raise SystemExit(f"{args.batch_file}:{number}: --batch_file cannot nest")
        try:
            print(generate(parser.parse_args(base + words)), flush=True)
        except SystemExit:
            print(f"{args.batch_file}:{number}: failed: {line}", file=sys.stderr)
            raise
