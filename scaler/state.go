// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// tierscaler's own state: the last run of each cron and async function.
//
// The last run orders evictions (oldest first) and must survive restarts,
// leader failovers and redeploys. faas-netes replaces a function
// Deployment's annotations on every faas-cli deploy, so tierscaler keeps it
// in an object of its own namespace that only tierscaler writes (by default
// the ConfigMap tierscaler-state), behind LastRunStore so that the
// simulator and tests keep it in memory (MemoryStore).

// LastRunStore keeps the last runs. The controller loads them once when it
// starts leading and saves what changed, at most once a cycle.
type LastRunStore interface {
	// Load returns the stored last runs.
	Load(ctx context.Context) (LastRuns, error)
	// Save applies changes in one write.
	Save(ctx context.Context, ch LastRunChanges) error
}

// LastRuns is the stored state.
type LastRuns struct {
	// Times are the last runs by function key (name.namespace).
	Times map[string]time.Time
	// Migrated says the tierscaler.io/last-run annotations of an earlier
	// version were read into the store: they are not read again.
	Migrated bool
}

// LastRunChanges are the changes of one cycle.
type LastRunChanges struct {
	// Set are new or moved last runs.
	Set map[string]time.Time
	// Delete are functions that no longer need one (deleted, or sync).
	Delete []string
	// Migrated marks the annotation migration done.
	Migrated bool
}

func (ch LastRunChanges) empty() bool {
	return len(ch.Set) == 0 && len(ch.Delete) == 0 && !ch.Migrated
}

// MemoryStore is a LastRunStore in memory, for the simulator and tests. It
// is safe for concurrent use.
type MemoryStore struct {
	mu     sync.Mutex
	state  LastRuns
	writes int
}

// NewMemoryStore returns an empty store, not migrated.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{state: LastRuns{Times: map[string]time.Time{}}}
}

// Load returns a copy of the state.
func (s *MemoryStore) Load(context.Context) (LastRuns, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return LastRuns{Times: maps.Clone(s.state.Times), Migrated: s.state.Migrated}, nil
}

// Save applies the changes.
func (s *MemoryStore) Save(_ context.Context, ch LastRunChanges) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	apply(s.state.Times, ch)
	s.state.Migrated = s.state.Migrated || ch.Migrated
	return nil
}

// Writes is the number of Saves so far.
func (s *MemoryStore) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// apply sets and deletes entries; a set never moves a last run back.
func apply(times map[string]time.Time, ch LastRunChanges) {
	for k, t := range ch.Set {
		if t.After(times[k]) {
			times[k] = t
		}
	}
	for _, k := range ch.Delete {
		delete(times, k)
	}
}

// The ConfigMap's format, version 1.
//
// Data keys are "<namespace>.<bucket>", bucket two hex digits (0 to
// stateBuckets-1) of the FNV-1a hash of the function name, so that a cycle
// rewrites only the buckets that changed (a JSON merge patch of those
// keys). A value holds one line per function of that namespace and bucket,
// sorted by name: "<name> <last run, Unix minutes in base 36>\n". At 10,000
// functions with 63-character names that is about 700 kB, under the 1 MiB
// object limit; a budget (MaxBytes) drops the oldest entries beyond it.
//
// Annotations: tierscaler.io/state-format "v1", and tierscaler.io/migrated,
// the time the tierscaler.io/last-run annotations were migrated.
const (
	stateBuckets          = 32
	annotationStateFormat = "tierscaler.io/state-format"
	annotationMigrated    = "tierscaler.io/migrated"
	stateFormat           = "v1"
	// DefaultStateMaxBytes is the ConfigMap store's default budget for its
	// data, well under the API server's 1 MiB limit.
	DefaultStateMaxBytes = 768 << 10
	// DefaultStateName is the default name of the state ConfigMap.
	DefaultStateName = "tierscaler-state"
)

// ConfigMapStore is a LastRunStore in a ConfigMap that only tierscaler
// writes. It reads and writes the API server directly (no informer): it
// needs get and patch on that one ConfigMap (and create, if it does not
// exist yet). It is safe for concurrent use.
type ConfigMapStore struct {
	// Client reads and writes the API server (not a cache).
	Client    client.Client
	Namespace string
	Name      string
	// MaxBytes bounds the data (keys and values); the oldest entries beyond
	// it are dropped: they sort first for eviction anyway. Default
	// DefaultStateMaxBytes.
	MaxBytes int
	Log      logr.Logger

	mu sync.Mutex
	// times is the store's content as last read or written; data its
	// encoding by key; exists and rv describe the object.
	times    map[string]time.Time
	data     map[string]string
	migrated bool
	exists   bool
	rv       string
	// Dropped counts the entries dropped for the budget.
	dropped int
}

// Load reads the ConfigMap. A missing ConfigMap is an empty state, not
// migrated. Lines that cannot be read are logged and skipped: that
// function's last run is then unknown (zero), which sorts it first for
// eviction but never protects or evicts anything by itself.
func (s *ConfigMapStore) Load(ctx context.Context) (LastRuns, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.read(ctx); err != nil {
		return LastRuns{}, err
	}
	return LastRuns{Times: maps.Clone(s.times), Migrated: s.migrated}, nil
}

// read loads the ConfigMap into the store. Called with s.mu held.
func (s *ConfigMapStore) read(ctx context.Context) error {
	var cm corev1.ConfigMap
	err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Name}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		s.times, s.data, s.migrated, s.exists, s.rv = map[string]time.Time{}, map[string]string{}, false, false, ""
		return nil
	case err != nil:
		return fmt.Errorf("read the state ConfigMap %s/%s: %w", s.Namespace, s.Name, err)
	}
	if f := cm.Annotations[annotationStateFormat]; f != "" && f != stateFormat {
		return fmt.Errorf("the state ConfigMap %s/%s has format %q; this tierscaler reads %q", s.Namespace, s.Name, f, stateFormat)
	}
	times, errs := decodeState(cm.Data)
	for _, err := range errs {
		s.Log.Error(err, "skipped an entry of the state ConfigMap", "configmap", s.Namespace+"/"+s.Name)
	}
	s.times, s.data, s.exists, s.rv = times, maps.Clone(cm.Data), true, cm.ResourceVersion
	if s.data == nil {
		s.data = map[string]string{}
	}
	_, s.migrated = cm.Annotations[annotationMigrated]
	return nil
}

// Save writes the changes: a merge patch of the buckets that changed, with
// the resourceVersion read last as a precondition. On a conflict (another
// leader wrote meanwhile) it reads the ConfigMap again, applies the changes
// to it (a last run never moves back) and tries once more.
func (s *ConfigMapStore) Save(ctx context.Context, ch LastRunChanges) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.times == nil {
		if err := s.read(ctx); err != nil {
			return err
		}
	}
	err := s.write(ctx, ch)
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		if err = s.read(ctx); err == nil {
			err = s.write(ctx, ch)
		}
	}
	return err
}

// write applies ch to the store's content and writes what changed. Called
// with s.mu held. On failure the store's content is read again next time.
func (s *ConfigMapStore) write(ctx context.Context, ch LastRunChanges) error {
	times := maps.Clone(s.times)
	apply(times, ch)
	budget := s.MaxBytes
	if budget <= 0 {
		budget = DefaultStateMaxBytes
	}
	dropped := dropOldest(times, budget)
	data := encodeState(times)
	migrated := s.migrated || ch.Migrated

	patch := map[string]any{}
	for k, v := range data {
		if s.data[k] != v {
			patch[k] = v
		}
	}
	for k := range s.data {
		if _, ok := data[k]; !ok {
			patch[k] = nil // a JSON merge patch deletes a key set to null
		}
	}
	if dropped > 0 {
		s.Log.Info("the state ConfigMap would exceed its size budget: dropped the oldest last runs (they sort first for eviction anyway)",
			"configmap", s.Namespace+"/"+s.Name, "dropped", dropped, "maxBytes", budget)
	}
	if len(patch) == 0 && migrated == s.migrated && s.exists {
		s.times = times
		return nil
	}
	annotations := map[string]string{annotationStateFormat: stateFormat}
	if migrated && !s.migrated {
		annotations[annotationMigrated] = time.Now().UTC().Format(time.RFC3339)
	}
	var cm corev1.ConfigMap
	var err error
	if !s.exists {
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, Annotations: annotations,
				Labels: map[string]string{"app.kubernetes.io/name": "tierscaler", "app.kubernetes.io/component": "state"}},
			Data: data,
		}
		err = s.Client.Create(ctx, &cm, client.FieldOwner(FieldManager))
	} else {
		body, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": s.rv, "annotations": annotations},
			"data":     patch,
		})
		cm.Namespace, cm.Name = s.Namespace, s.Name
		err = s.Client.Patch(ctx, &cm, client.RawPatch(types.MergePatchType, body), client.FieldOwner(FieldManager))
	}
	if err != nil {
		s.times = nil // read again before the next write
		return fmt.Errorf("write the state ConfigMap %s/%s: %w", s.Namespace, s.Name, err)
	}
	s.times, s.data, s.migrated, s.exists, s.rv = times, data, migrated, true, cm.ResourceVersion
	s.dropped += dropped
	return nil
}

// Dropped is the number of entries dropped so far to keep the data within
// MaxBytes.
func (s *ConfigMapStore) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// stateBucket is the data key of a function.
func stateBucket(namespace, name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return namespace + "." + fmt.Sprintf("%02x", h.Sum32()%stateBuckets)
}

// encodeState renders last runs as the ConfigMap's data.
func encodeState(times map[string]time.Time) map[string]string {
	type line struct{ name, at string }
	buckets := map[string][]line{}
	for k, t := range times {
		i := strings.LastIndexByte(k, '.')
		if i <= 0 || i == len(k)-1 {
			continue // not name.namespace
		}
		name, ns := k[:i], k[i+1:]
		b := stateBucket(ns, name)
		buckets[b] = append(buckets[b], line{name, strconv.FormatInt(t.Unix()/60, 36)})
	}
	data := make(map[string]string, len(buckets))
	for b, lines := range buckets {
		slices.SortFunc(lines, func(x, y line) int { return strings.Compare(x.name, y.name) })
		var sb strings.Builder
		for _, l := range lines {
			sb.WriteString(l.name)
			sb.WriteByte(' ')
			sb.WriteString(l.at)
			sb.WriteByte('\n')
		}
		data[b] = sb.String()
	}
	return data
}

// decodeState reads the ConfigMap's data; it skips what it cannot read and
// says what.
func decodeState(data map[string]string) (map[string]time.Time, []error) {
	times := map[string]time.Time{}
	var errs []error
	for key, v := range data {
		i := strings.LastIndexByte(key, '.')
		if i <= 0 {
			errs = append(errs, fmt.Errorf("key %q: want <namespace>.<bucket>", key))
			continue
		}
		ns := key[:i]
		for n, l := range strings.Split(strings.TrimSuffix(v, "\n"), "\n") {
			if l == "" {
				continue
			}
			name, at, ok := strings.Cut(l, " ")
			minutes, err := strconv.ParseInt(at, 36, 64)
			if !ok || name == "" || err != nil || minutes < 0 || minutes > 1<<40 {
				errs = append(errs, fmt.Errorf("key %q line %d %q: want \"<name> <Unix minutes in base 36>\"", key, n+1, l))
				continue
			}
			times[name+"."+ns] = time.Unix(minutes*60, 0).UTC()
		}
	}
	return times, errs
}

// stateSize is the size the API server counts: keys and values.
func stateSize(data map[string]string) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}

// dropOldest removes the oldest entries until the encoded data fits in
// budget, and returns how many it removed.
func dropOldest(times map[string]time.Time, budget int) int {
	type entry struct {
		key, bucket string
		size        int
	}
	entries := make([]entry, 0, len(times))
	perBucket := map[string]int{}
	size := 0
	for k, t := range times {
		i := strings.LastIndexByte(k, '.')
		if i <= 0 || i == len(k)-1 {
			continue // not encoded
		}
		e := entry{key: k, bucket: stateBucket(k[i+1:], k[:i]), size: i + 2 + len(strconv.FormatInt(t.Unix()/60, 36))}
		if perBucket[e.bucket] == 0 {
			size += len(e.bucket)
		}
		perBucket[e.bucket]++
		size += e.size
		entries = append(entries, e)
	}
	if size <= budget {
		return 0
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := times[a.key].Compare(times[b.key]); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	dropped := 0
	for _, e := range entries {
		if size <= budget {
			break
		}
		delete(times, e.key)
		size -= e.size
		if perBucket[e.bucket]--; perBucket[e.bucket] == 0 {
			size -= len(e.bucket)
		}
		dropped++
	}
	return dropped
}
