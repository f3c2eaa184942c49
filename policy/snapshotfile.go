// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SnapshotKind is the kind of a saved snapshot file.
const SnapshotKind = "Snapshot"

// SnapshotFile is a decision's whole input, saved so that it can be replayed
// offline: `tierscaler plan --save-snapshot FILE` writes one, and
// `tierscaler plan --snapshot FILE` decides from it with no cluster and no
// Prometheus, printing the same plan. A user attaches it to a bug report
// ("why did it evict X?"); a maintainer turns it into a test.
type SnapshotFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Time is the clock of the decision.
	Time time.Time `json:"time"`
	// Policy is the policy in force, with its defaults.
	Policy *Policy `json:"policy"`
	// Snapshot is what the controller gathered.
	Snapshot *Snapshot `json:"snapshot"`
}

// EncodeSnapshot writes the input of a decision as a versioned JSON
// document.
func EncodeSnapshot(s *Snapshot, p *Policy, now time.Time) ([]byte, error) {
	if s == nil || p == nil {
		return nil, errors.New("snapshot file: a snapshot and a policy are required")
	}
	return json.MarshalIndent(SnapshotFile{APIVersion: APIVersion, Kind: SnapshotKind, Time: now.UTC(), Policy: p, Snapshot: s}, "", "  ")
}

// DecodeSnapshot reads a snapshot file: strictly (unknown fields are
// errors), its policy validated and defaulted as a policy file is, and each
// cron function's schedule parsed again from its text. It returns the
// snapshot, the policy and the clock to decide with.
func DecodeSnapshot(data []byte) (*Snapshot, *Policy, time.Time, error) {
	var head struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Time       time.Time       `json:"time"`
		Policy     json.RawMessage `json:"policy"`
		Snapshot   json.RawMessage `json:"snapshot"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&head); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: %w", err)
	}
	switch {
	case head.APIVersion != APIVersion:
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: apiVersion must be %q, got %q", APIVersion, head.APIVersion)
	case head.Kind != SnapshotKind:
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: kind must be %q, got %q", SnapshotKind, head.Kind)
	case head.Time.IsZero():
		return nil, nil, time.Time{}, errors.New("snapshot file: time is required")
	case len(head.Policy) == 0 || len(head.Snapshot) == 0:
		return nil, nil, time.Time{}, errors.New("snapshot file: policy and snapshot are required")
	}
	p, err := Parse(head.Policy)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: policy: %w", err)
	}
	var s Snapshot
	dec = json.NewDecoder(bytes.NewReader(head.Snapshot))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: snapshot: %w", err)
	}
	var errs []error
	for i := range s.Functions {
		f := &s.Functions[i]
		if f.ScheduleSpec == "" {
			continue
		}
		sched, err := p.ParseSchedule(f.ScheduleSpec)
		if err != nil {
			// The controller holds such a function; so does the replay.
			errs = append(errs, fmt.Errorf("function %s: %w", f.Key(), err))
			continue
		}
		f.Schedule = sched
	}
	if len(errs) > 0 {
		return nil, nil, time.Time{}, fmt.Errorf("snapshot file: %w", errors.Join(errs...))
	}
	return &s, p, head.Time, nil
}
