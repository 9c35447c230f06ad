// Package hfcache finds models in the local Hugging Face hub cache, so that a
// hub id such as HuggingFaceTB/SmolLM2-135M works wherever a model directory
// does: offline once the model has been downloaded (lowrank pull,
// huggingface-cli download, or any transformers/PEFT program that loaded
// it), and by downloading it with Download set.
package hfcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// idPattern is a hub repository id, optionally with @revision: org/name[@rev].
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$`)

// Dir is the hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
func Dir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// Resolve returns ref itself when it names an existing file or directory;
// when it is a hub id (org/name or org/name@revision) it returns the cached
// snapshot directory of that revision (default main). Anything else is
// returned unchanged, for the caller's own "no such file" error.
func Resolve(ref string) (string, error) {
	if _, err := os.Stat(ref); err == nil || !idPattern.MatchString(ref) {
		return ref, nil
	}
	id, rev, _ := strings.Cut(ref, "@")
	if rev == "" {
		rev = "main"
	}
	cache := Dir()
	repo := filepath.Join(cache, "models--"+strings.ReplaceAll(id, "/", "--"))
	hint := fmt.Sprintf("download it first (lowrank pull %s), or give a local directory or .gguf file", id)
	offline := os.Getenv("HF_HUB_OFFLINE") == "1" || strings.EqualFold(os.Getenv("HF_HUB_OFFLINE"), "true")
	if offline {
		hint += " (HF_HUB_OFFLINE is set)"
	}
	download := func() (string, error) {
		if Download == nil || offline {
			return "", nil
		}
		return Download(context.Background(), id, rev)
	}
	if _, err := os.Stat(repo); err != nil {
		if snap, err := download(); snap != "" || err != nil {
			return snap, err
		}
		return "", fmt.Errorf("%s: not a local path, and not in the Hugging Face cache %s: %s", ref, cache, hint)
	}
	commit := rev
	if raw, err := os.ReadFile(filepath.Join(repo, "refs", filepath.FromSlash(rev))); err == nil {
		commit = strings.TrimSpace(string(raw))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %v", ref, err)
	}
	snap := filepath.Join(repo, "snapshots", commit)
	if _, err := os.Stat(snap); err != nil {
		if snap, err := download(); snap != "" || err != nil {
			return snap, err
		}
		return "", fmt.Errorf("%s: revision %q is not in the Hugging Face cache %s: %s", ref, rev, cache, hint)
	}
	return snap, nil
}

// Download, when set, fetches a hub id missing from the cache (unless
// HF_HUB_OFFLINE) and returns its snapshot: the lowrank command sets it to
// a Client's Pull, so --model org/name downloads as transformers does;
// library users and tests leave it nil and never touch the network.
var Download func(ctx context.Context, id, rev string) (string, error)
