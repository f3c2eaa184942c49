// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// A saved snapshot decides offline exactly as the live one did.
func TestSnapshotFileReplaysTheSamePlan(t *testing.T) {
	for seed := range 500 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		s, p := randomSnapshot(rng)
		for i := range s.Functions {
			if _, never := s.Functions[i].Schedule.(neverSchedule); never {
				// The controller holds a function whose schedule never
				// fires, without a schedule.
				s.Functions[i].Schedule, s.Functions[i].ScheduleSpec, s.Functions[i].Hold = nil, "", true
			}
		}
		want := Decide(s, p, t0)
		data, err := EncodeSnapshot(s, p, t0)
		require.NoError(t, err)
		s2, p2, now, err := DecodeSnapshot(data)
		require.NoError(t, err, "seed %d", seed)
		require.True(t, now.Equal(t0))
		if diff := cmp.Diff(want, Decide(s2, p2, now)); diff != "" {
			t.Fatalf("seed %d: the replayed plan differs (-live +replay):\n%s", seed, diff)
		}
	}
}

func TestDecodeSnapshotRefusesWhatItCannotReplay(t *testing.T) {
	s := big(fn("report", TierCron, 1, schedule("0 3 * * *")))
	good, err := EncodeSnapshot(s, testPolicy(), t0)
	require.NoError(t, err)
	for _, tc := range []struct{ name, from, to, want string }{
		{"another version", `"apiVersion": "tierscaler.io/v1alpha1"`, `"apiVersion": "tierscaler.io/v2"`, `apiVersion must be "tierscaler.io/v1alpha1"`},
		{"another kind", `"kind": "Snapshot"`, `"kind": "Plan"`, `kind must be "Snapshot"`},
		{"an unknown field", `"time":`, `"tyme": "x", "time":`, `unknown field "tyme"`},
		{"an invalid policy", `"interval": "15s"`, `"interval": "0s"`, "policy: invalid policy: interval"},
		{"a bad schedule", `"schedule": "0 3 * * *"`, `"schedule": "@every 5m"`, "function report.openfaas-fn: schedule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(string(good), tc.from, tc.to, 1)
			require.NotEqual(t, string(good), data, "the case changes nothing")
			_, _, _, err := DecodeSnapshot([]byte(data))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
