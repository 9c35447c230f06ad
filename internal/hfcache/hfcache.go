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

// idPattern is a hub repository id, org/name.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// refPattern is a model reference: org/name[@revision][:TAG].
var refPattern = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/~-]+))?(?::([A-Za-z0-9._-]+))?$`)

// ParseRef splits a model reference org/name[@revision][:TAG] (TAG: a
// GGUF file of the repository, by quantization or file name, as
// llama.cpp's -hf takes it). ok is false for anything else.
func ParseRef(ref string) (id, rev, tag string, ok bool) {
	m := refPattern.FindStringSubmatch(ref)
	if m == nil || strings.Contains(ref, "..") || strings.Contains(m[2], "//") {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

// Offline reports HF_HUB_OFFLINE, under which nothing touches the network.
func Offline() bool {
	v := os.Getenv("HF_HUB_OFFLINE")
	return v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes") || strings.EqualFold(v, "on")
}

// Hub, when set, makes the client that downloads what the cache lacks
// (unless HF_HUB_OFFLINE): the lowrank command sets it, so that --model
// org/name downloads as transformers does; library users and tests leave
// it nil and never touch the network.
var Hub func() *Client

// canDownload reports whether what the cache lacks may be downloaded.
func canDownload() bool { return Hub != nil && !Offline() }

// repoIn is id's folder in the cache: models--org--name, datasets--org--name.
func (k kind) repoIn(cache, id string) string {
	return filepath.Join(cache, k.dir+strings.ReplaceAll(id, "/", "--"))
}

func (k kind) repoDir(id string) string { return k.repoIn(Dir(), id) }

// snapshot returns the cached snapshot of id at rev, or "" when the cache
// has none (err: the cache could not be read).
func (k kind) snapshot(id, rev string) (string, error) {
	repo := k.repoDir(id)
	commit := rev
	if raw, err := os.ReadFile(filepath.Join(repo, "refs", filepath.FromSlash(rev))); err == nil {
		commit = strings.TrimSpace(string(raw))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	snap := filepath.Join(repo, "snapshots", commit)
	if !validName(commit) || strings.Contains(commit, "/") {
		return "", nil
	}
	if st, err := os.Stat(snap); err != nil || !st.IsDir() {
		return "", nil
	}
	return snap, nil
}

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

// Resolve returns ref itself when it names an existing file or directory.
// A model reference (ParseRef) becomes its cached snapshot directory of
// that revision (default main), or with :TAG the GGUF file of it that TAG
// names; what the cache lacks is downloaded when Hub is set. Anything else
// is returned unchanged, for the caller's own "no such file" error.
func Resolve(ref string) (string, error) {
	if _, err := os.Stat(ref); err == nil {
		return ref, nil
	}
	id, rev, tag, ok := ParseRef(ref)
	if !ok {
		if strings.Count(ref, "/") == 1 && !filepath.IsAbs(ref) && !strings.HasPrefix(ref, ".") {
			// Neither a path nor a hub name, though shaped like one: say both.
			return "", fmt.Errorf("%s: no such file or directory, and not a hub name (ORG/NAME[@REVISION][:TAG], letters, digits, '-', '_', '.')", ref)
		}
		return ref, nil
	}
	rev = orMain(rev)
	hint := fmt.Sprintf("download it first (lowrank pull %s), or give a local directory or .gguf file", ref)
	if Offline() {
		hint += " (HF_HUB_OFFLINE is set)"
	}
	snap, err := models.snapshot(id, rev)
	if err != nil {
		return "", fmt.Errorf("%s: %v", ref, err)
	}
	if snap != "" {
		if tag == "" {
			if _, err := os.Stat(filepath.Join(snap, "config.json")); err == nil || !canDownload() {
				return snap, nil
			}
		} else if file, err := matchGGUF(cachedGGUF(snap), tag); err == nil {
			return filepath.Join(snap, filepath.FromSlash(file)), nil
		} else if !canDownload() {
			return "", fmt.Errorf("%s: the cached snapshot %s: %v: %s", ref, snap, err, hint)
		}
	}
	if canDownload() {
		c := Hub()
		if c.Log != nil {
			c.Log("downloading from the hub", "model", id, "revision", rev)
		}
		if tag != "" {
			return c.PullGGUF(context.Background(), id, rev, tag)
		}
		return c.Pull(context.Background(), id, rev)
	}
	if _, err := os.Stat(models.repoDir(id)); err != nil {
		return "", fmt.Errorf("%s: not a local path, and not in the Hugging Face cache %s: %s", ref, Dir(), hint)
	}
	return "", fmt.Errorf("%s: revision %q is not in the Hugging Face cache %s: %s", ref, rev, Dir(), hint)
}
