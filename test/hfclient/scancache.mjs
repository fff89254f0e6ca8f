// Scans a Hugging Face cache directory with the real @huggingface/hub client
// (scanCacheDir, as `huggingface-cli scan-cache` does), to check that an
// allmende export is laid out as the hub's clients expect:
//   node scancache.mjs CACHE_DIR
// Prints one JSON line: the repos with their revisions, files and refs, and
// the client's warnings.
import { scanCacheDir } from "@huggingface/hub";

const [cacheDir] = process.argv.slice(2);
const info = await scanCacheDir(cacheDir);
const repos = [...info.repos].map((r) => ({
  id: r.id.name,
  type: r.id.type,
  revisions: [...r.revisions].map((v) => ({
    commit: v.commitOid,
    refs: [...v.refs],
    files: [...v.files].map((f) => ({ name: f.path.slice(v.path.length + 1), blob: f.blob.path.split("/").pop(), size: f.blob.size })),
  })),
}));
console.log(JSON.stringify({ repos, warnings: info.warnings.map(String) }));
