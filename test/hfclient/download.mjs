// Downloads a repository through a Hugging Face-compatible endpoint with the
// real @huggingface/hub client, as a user of HF tools would:
//   node download.mjs HUB_URL REPO REVISION CACHE_DIR FILE OUT
// 1. snapshotDownload of the whole repository into CACHE_DIR (HF cache layout);
// 2. FILE downloaded again in two ranged halves, the second resuming where the
//    first stopped, concatenated into OUT.
// Prints one JSON line: {"snapshot": DIR, "size": N}.
import { snapshotDownload, downloadFile } from "@huggingface/hub";
import { writeFile } from "node:fs/promises";

const [hubUrl, repo, revision, cacheDir, file, out] = process.argv.slice(2);
const snapshot = await snapshotDownload({ repo, revision, hubUrl, cacheDir });
const blob = await downloadFile({ repo, path: file, revision, hubUrl, xet: false });
if (!blob) {
  throw new Error(`${file}: not found`);
}
const half = Math.floor(blob.size / 2);
const first = new Uint8Array(await blob.slice(0, half).arrayBuffer());
const rest = new Uint8Array(await blob.slice(half).arrayBuffer());
const whole = new Uint8Array(first.length + rest.length);
whole.set(first, 0);
whole.set(rest, first.length);
await writeFile(out, whole);
console.log(JSON.stringify({ snapshot, size: blob.size }));
