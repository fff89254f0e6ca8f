package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Files in a node's home directory.
const (
	IdentityFile = "identity.key"
	ConfigFile   = "config.yaml"
	APIFile      = "api"
	lockFile     = "lock"
	storeDir     = "store"
)

// ErrLocked means another allmende process uses the home directory.
var ErrLocked = errors.New("home is in use by another allmende process")

// DefaultStorePath is the store's directory inside home.
func DefaultStorePath(home string) string { return filepath.Join(home, storeDir) }

// InitHome creates home with an identity key, the given config file content
// (if no config file exists) and an empty store. It is idempotent.
func InitHome(home string, configTemplate []byte, storePath string) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("init %s: %w", home, err)
	}
	keyPath := filepath.Join(home, IdentityFile)
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return fmt.Errorf("init %s: generate identity: %w", home, err)
		}
		raw, err := crypto.MarshalPrivateKey(sk)
		if err != nil {
			return fmt.Errorf("init %s: %w", home, err)
		}
		if err := fsutil.WriteFileAtomic(keyPath, raw, 0o600); err != nil {
			return fmt.Errorf("init %s: %w", home, err)
		}
	}
	cfgPath := filepath.Join(home, ConfigFile)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) && configTemplate != nil {
		if err := fsutil.WriteFileAtomic(cfgPath, configTemplate, 0o600); err != nil {
			return fmt.Errorf("init %s: %w", home, err)
		}
	}
	if storePath == "" {
		storePath = DefaultStorePath(home)
	}
	return store.Init(storePath)
}

// loadIdentity reads the node's private key from home.
func loadIdentity(home string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(filepath.Join(home, IdentityFile))
	if err != nil {
		return nil, fmt.Errorf("read identity: %w (run `allmende init`)", err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("read identity %s: %w", filepath.Join(home, IdentityFile), err)
	}
	return sk, nil
}

// errBusy is tryLock's answer when another process holds the lock.
var errBusy = errors.New("locked by another process")

// homeLock is an exclusive lock on a home directory, held while a daemon or
// an embedded node runs. The kernel releases it when the process dies, so a
// killed daemon never leaves a stale lock.
type homeLock struct{ f *os.File }

func lockHome(home string) (*homeLock, error) {
	f, err := os.OpenFile(filepath.Join(home, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", home, err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errBusy) {
			return nil, fmt.Errorf("%w: %s (is `allmende daemon` already running? stop it or use another --home)", ErrLocked, home)
		}
		return nil, fmt.Errorf("lock %s: %w", home, err)
	}
	return &homeLock{f: f}, nil
}

func (l *homeLock) release() error {
	return l.f.Close() // closing drops the lock
}

// WriteAPIFile records the daemon's API base URL in home, replacing a stale
// file a killed daemon may have left.
func WriteAPIFile(home, url string) error {
	return fsutil.WriteFileAtomic(filepath.Join(home, APIFile), []byte(url+"\n"), 0o600)
}

// RemoveAPIFile removes the API file at shutdown.
func RemoveAPIFile(home string) error {
	err := os.Remove(filepath.Join(home, APIFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReadAPIFile returns the API base URL a daemon recorded, or "" if none.
func ReadAPIFile(home string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(home, APIFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}
