"""Drives the Python Hugging Face stack for allmende's end-to-end tests.

Each subcommand does one thing with the real libraries (huggingface_hub,
transformers, tokenizers, safetensors) and prints one JSON object on stdout
for the Go test to check. HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE come
from the environment, as for any user of these libraries.

  make-model DIR            write a tiny GPT-2-shaped model with the reference libraries
  make-dataset DIR          write a tiny dataset
  snapshot REPO [--revision R]
                            snapshot_download into HF_HUB_CACHE
  file REPO PATH [--revision R]
                            hf_hub_download of one file into HF_HUB_CACHE
  error REPO PATH [--revision R] [--repo-type T]
                            the error hf_hub_download raises for PATH, if any
  info REPO [--revision R]  HfApi().model_info(files_metadata=True)
  metadata REPO PATH [--revision R]
                            get_hf_file_metadata of one file
  load REPO SOURCE          AutoConfig, AutoTokenizer and safetensors through the
                            cache (only from it with HF_HUB_OFFLINE=1), compared
                            with the files in SOURCE
  scan                      scan_cache_dir() of HF_HUB_CACHE
"""

import argparse
import json
import os
import sys

# The test sentence the tokenizer is trained on and asked to encode.
SENTENCE = "the school mirror shares tiny models with every peer"
CORPUS = [
    "a commons of models and datasets",
    "the school mirror shares weights with the room",
    "peers fetch blocks and verify every hash",
    "tiny models load offline from the cache",
    SENTENCE,
]
# Dimensions of the tiny model: small enough to write in a blink, large
# enough that the weights (15 MB) span more than one of the 10 MiB chunks
# huggingface_hub writes a download in, so a broken download resumes with a
# Range request.
EMBED, LAYERS, VOCAB, POSITIONS = 512, 2, 256, 64


def make_model(args):
    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, PreTrainedTokenizerFast

    out = args.dir
    os.makedirs(os.path.join(out, "docs"), exist_ok=True)
    GPT2Config(vocab_size=VOCAB, n_positions=POSITIONS, n_embd=EMBED, n_layer=LAYERS, n_head=4,
               bos_token_id=1, eos_token_id=2).save_pretrained(out)

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(out)

    rng = np.random.default_rng(16)
    tensors = {"wte.weight": rng.standard_normal((VOCAB, EMBED), dtype=np.float32),
               "wpe.weight": rng.standard_normal((POSITIONS, EMBED), dtype=np.float32)}
    for i in range(LAYERS):
        tensors[f"h.{i}.attn.c_attn.weight"] = rng.standard_normal((EMBED, 3 * EMBED), dtype=np.float32)
        tensors[f"h.{i}.mlp.c_fc.weight"] = rng.standard_normal((EMBED, 4 * EMBED), dtype=np.float32)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "np"})

    # What every hub repository has, and a file in a sub-directory.
    write(out, ".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    write(out, "docs/notes.md", "# tiny-gpt2\n\nA model for tests.\n")
    emit({"files": listing(out), "sentence": SENTENCE, "ids": tok.encode(SENTENCE).ids})


def make_dataset(args):
    out = args.dir
    rows = "\n".join(f"{i},{line}" for i, line in enumerate(CORPUS))
    write(out, "data/train.csv", "id,text\n" + rows + "\n")
    write(out, "data/test.csv", "id,text\n0," + SENTENCE + "\n")
    write(out, "README.md", "---\nlicense: mit\n---\n# poems\n")
    emit({"files": listing(out)})


def snapshot(args):
    from huggingface_hub import snapshot_download

    emit({"path": snapshot_download(args.repo, revision=args.revision)})


def file(args):
    from huggingface_hub import hf_hub_download

    emit({"path": hf_hub_download(args.repo, args.path, revision=args.revision)})


def error(args):
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(args.repo, args.path, revision=args.revision, repo_type=args.repo_type)
    except Exception as e:  # the test wants its class, whatever it is
        emit({"error": type(e).__name__, "message": str(e)})
        return
    emit({"error": None})


def info(args):
    from huggingface_hub import HfApi

    i = HfApi().model_info(args.repo, revision=args.revision, files_metadata=True)
    siblings = []
    for s in i.siblings:
        lfs = {"sha256": s.lfs.sha256, "size": s.lfs.size, "pointer_size": s.lfs.pointer_size} if s.lfs else None
        siblings.append({"rfilename": s.rfilename, "size": s.size, "blob_id": s.blob_id, "lfs": lfs})
    emit({"id": i.id, "sha": i.sha, "siblings": siblings})


def metadata(args):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    m = get_hf_file_metadata(hf_hub_url(args.repo, args.path, revision=args.revision))
    emit({"etag": m.etag, "size": m.size, "commit_hash": m.commit_hash, "xet": m.xet_file_data is not None})


def load(args):
    """Loads the model as transformers and safetensors users do, from the
    cache only when HF_HUB_OFFLINE=1, and compares with the originals."""
    import numpy as np
    from huggingface_hub import hf_hub_download
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(args.repo)
    tokenizer = AutoTokenizer.from_pretrained(args.repo)
    want_ids = Tokenizer.from_file(os.path.join(args.source, "tokenizer.json")).encode(SENTENCE).ids
    got = load_file(hf_hub_download(args.repo, "model.safetensors"))
    want = load_file(os.path.join(args.source, "model.safetensors"))
    same = sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
    emit({"model_type": config.model_type, "n_embd": config.n_embd,
          "ids": tokenizer(SENTENCE, add_special_tokens=False)["input_ids"], "want_ids": want_ids,
          "tensors": len(got), "weights_equal": bool(same)})


def scan(args):
    from huggingface_hub import scan_cache_dir

    report = scan_cache_dir()
    repos = []
    for r in sorted(report.repos, key=lambda r: r.repo_id):
        revisions = []
        for rev in r.revisions:
            files = {f.file_name if f.file_path.parent == rev.snapshot_path
                     else str(f.file_path.relative_to(rev.snapshot_path)): f.size_on_disk for f in rev.files}
            revisions.append({"commit": rev.commit_hash, "refs": sorted(rev.refs), "files": files})
        repos.append({"repo_id": r.repo_id, "repo_type": r.repo_type, "nb_files": r.nb_files,
                      "size_on_disk": r.size_on_disk, "revisions": revisions})
    emit({"repos": repos, "warnings": [str(w) for w in report.warnings]})


def tree(args):
    from huggingface_hub import get_cached_repo_tree

    files = get_cached_repo_tree(args.repo, revision=args.revision)
    emit({"files": {f.path: {"size": f.size, "oid": f.blob_id} for f in files}})


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def emit(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in [("make-model", make_model), ("make-dataset", make_dataset)]:
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.set_defaults(fn=fn)
    for name, fn, extra in [("snapshot", snapshot, []), ("file", file, ["path"]), ("error", error, ["path"]),
                            ("info", info, []), ("metadata", metadata, ["path"]), ("load", load, ["source"]),
                            ("tree", tree, [])]:
        s = sub.add_parser(name)
        s.add_argument("repo")
        for a in extra:
            s.add_argument(a)
        s.add_argument("--revision")
        s.set_defaults(fn=fn)
        if name == "error":
            s.add_argument("--repo-type")
    sub.add_parser("scan").set_defaults(fn=scan)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
