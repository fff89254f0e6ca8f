//go:build !unix

package ollama

// oNoFollow is 0 where open has no O_NOFOLLOW; Read and List check with
// Lstat before they open.
const oNoFollow = 0
