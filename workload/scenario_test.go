// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tierscaler/tierscaler/policy"
)

func dur(d time.Duration) policy.Duration { return policy.Duration{Duration: d} }

func TestDefaults(t *testing.T) {
	s, err := Parse([]byte(`apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: defaults
functions:
  - name: web
  - name: job
    schedule: "@hourly"
  - name: q
    async:
      bursts: [{every: 5m, jobs: 3}]
  - name: explicit
    namespace: team-a
    tier: sync
    minReplicas: 0
    initialReplicas: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	usage := Usage{Pod: Resources{CPU: "2m", Memory: "16Mi"}, PerRequest: Resources{CPU: "10m", Memory: "1Mi"}}
	requests := Resources{CPU: "50m", Memory: "64Mi"}
	want := &Scenario{
		APIVersion: APIVersion, Kind: Kind, Name: "defaults",
		TimeZone:        "UTC",
		Start:           "2026-01-05T00:00:00",
		Duration:        dur(time.Hour),
		Nodes:           Nodes{Count: 4, CPU: "4", Memory: "8Gi", Pods: 110},
		PodStartLatency: dur(2 * time.Second),
		Functions: []Function{
			{
				Name: "web", Namespace: "openfaas-fn", Tier: policy.TierSync,
				InitialReplicas: ptr(int32(1)), MinReplicas: ptr(int32(1)), MaxReplicas: 20, MaxInflight: 10,
				Requests: requests, Usage: usage,
				Sync: &SyncLoad{RequestDuration: dur(100 * time.Millisecond)},
			},
			{
				Name: "job", Namespace: "openfaas-fn", Tier: policy.TierCron, Schedule: "@hourly",
				InitialReplicas: ptr(int32(1)), MinReplicas: ptr(int32(1)), MaxReplicas: 20, MaxInflight: 10,
				Requests: requests, Usage: usage,
				Cron: &CronLoad{RunDuration: dur(10 * time.Second)},
			},
			{
				Name: "q", Namespace: "openfaas-fn", Tier: policy.TierAsync,
				InitialReplicas: ptr(int32(1)), MinReplicas: ptr(int32(1)), MaxReplicas: 20, MaxInflight: 10,
				Requests: requests, Usage: usage,
				Async: &AsyncLoad{
					Bursts:      []JobBurst{{Every: dur(5 * time.Minute), Jobs: 3, First: ptr(dur(5 * time.Minute))}},
					JobDuration: dur(time.Second),
				},
			},
			{
				Name: "explicit", Namespace: "team-a", Tier: policy.TierSync,
				InitialReplicas: ptr(int32(2)), MinReplicas: ptr(int32(0)), MaxReplicas: 20, MaxInflight: 10,
				Requests: requests, Usage: usage,
				Sync: &SyncLoad{RequestDuration: dur(100 * time.Millisecond)},
			},
		},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Fatalf("defaulted scenario (-want +got):\n%s", diff)
	}
	// Defaulting twice changes nothing.
	again := *s
	again.Functions = append([]Function(nil), s.Functions...)
	again.Default()
	if diff := cmp.Diff(s, &again); diff != "" {
		t.Fatalf("Default is not idempotent:\n%s", diff)
	}
	if got := s.Functions[3].Key(); got != "explicit.team-a" {
		t.Errorf("Key = %q, want explicit.team-a", got)
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{
			name: "wrong apiVersion and kind, no name",
			yaml: "apiVersion: v1\nkind: Policy\n",
			want: []string{`apiVersion: want "tierscaler.io/v1alpha1", got "v1"`, `kind: want "Scenario", got "Policy"`, "name: is required"},
		},
		{
			name: "unknown field",
			yaml: header + "- name: web\n  rps: 5\n",
			want: []string{`unknown field "rps"`},
		},
		{
			name: "bad time zone and start",
			yaml: "apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: x\ntimeZone: Mars/Olympus\nstart: yesterday\n",
			want: []string{`timeZone: unknown time zone "Mars/Olympus"`, `start: want an RFC 3339 time`},
		},
		{
			name: "bad nodes",
			yaml: "apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: x\nnodes: {count: -1, cpu: lots, memory: 8Gi, pods: -3}\n",
			want: []string{"nodes.count: must not be negative, got -1", `nodes.cpu: want a Kubernetes quantity such as "250m" or "128Mi", got "lots"`, "nodes.pods: must not be negative, got -3"},
		},
		{
			name: "bad duration string",
			yaml: "apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: x\nduration: forever\n",
			want: []string{`invalid duration "forever"`},
		},
		{
			name: "function identity",
			yaml: header + "- name: Web_1\n- namespace: x\n- name: ok\n- name: ok\n",
			want: []string{
				`functions[0] (Web_1).name: "Web_1" is not a DNS-1123 label`,
				"functions[1].name: is required",
				"functions[3] (ok): function ok.openfaas-fn is also functions[2]",
			},
		},
		{
			name: "replicas and concurrency",
			yaml: header + "- name: a\n  minReplicas: 5\n  maxReplicas: 3\n  initialReplicas: 4\n  maxInflight: -2\n- name: b\n  minReplicas: -1\n  maxReplicas: -1\n",
			want: []string{
				"functions[0] (a).minReplicas: 5 is above maxReplicas 3",
				"functions[0] (a).initialReplicas: want 0..maxReplicas (3), got 4",
				"functions[0] (a).maxInflight: must be at least 1, got -2",
				"functions[1] (b).minReplicas: must not be negative, got -1",
				"functions[1] (b).maxReplicas: must be at least 1, got -1",
			},
		},
		{
			name: "resources",
			yaml: header + "- name: a\n  requests: {cpu: 2, memory: 1Gi}\n  limits: {cpu: 1, memory: 10x}\n  usage: {pod: {cpu: -1}, perRequest: {memory: lots}}\n",
			want: []string{
				"functions[0] (a).requests.cpu: 2 is above limits.cpu 1",
				`functions[0] (a).limits.memory: want a Kubernetes quantity such as "250m" or "128Mi", got "10x"`,
				`functions[0] (a).usage.pod.cpu: must not be negative, got "-1"`,
				`functions[0] (a).usage.perRequest.memory: want a Kubernetes quantity`,
			},
		},
		{
			name: "tier and blocks",
			yaml: header + "- name: a\n  tier: batch\n- name: b\n  tier: cron\n- name: c\n  tier: sync\n  schedule: '* * * * *'\n  cron: {runDuration: 1s}\n  async: {rate: 1}\n- name: d\n  schedule: '61 * * * *'\n- name: e\n  schedule: 'TZ=UTC * * * * *'\n",
			want: []string{
				`functions[0] (a).tier: unknown tier "batch" (want sync, cron or async)`,
				"functions[1] (b).schedule: a cron function needs a schedule",
				"functions[2] (c).schedule: only a cron function has a schedule (tier is sync)",
				"functions[2] (c).cron: only a cron function has a cron load (tier is sync)",
				"functions[2] (c).async: only an async function has an async load (tier is sync)",
				`functions[3] (d).schedule: "61 * * * *": `,
				`functions[4] (e).schedule: "TZ=UTC * * * * *": a time zone prefix is not supported`,
			},
		},
		{
			name: "sync load",
			yaml: header + `- name: a
  sync:
    rate: -1
    diurnal: {peakRate: 1, peakHour: 24}
    bursts:
      - {at: soon, for: 1m, rps: 5}
      - {at: "25:00", for: 1m, rps: 5}
      - {at: "-1m", for: 0s, rps: 0}
      - {at: "12:00", for: 25h, rps: 1}
    requestDuration: -1s
`,
			want: []string{
				"functions[0] (a).sync.rate: want a finite number >= 0, got -1",
				"functions[0] (a).sync.diurnal.peakHour: want an hour in [0, 24), got 24",
				`functions[0] (a).sync.bursts[0].at: want an offset from the start such as "90s" or a daily clock time such as "13:30", got "soon"`,
				`functions[0] (a).sync.bursts[1].at: clock time "25:00" out of range`,
				`functions[0] (a).sync.bursts[2].at: offset "-1m" is negative`,
				"functions[0] (a).sync.bursts[2].for: must be positive, got 0s",
				"functions[0] (a).sync.bursts[2].rps: want a finite number > 0, got 0",
				"functions[0] (a).sync.bursts[3].for: a daily burst lasts at most 24h, got 25h0m0s",
				"functions[0] (a).sync.requestDuration: must be positive, got -1s",
			},
		},
		{
			name: "peak below base",
			yaml: header + "- name: a\n  sync: {rate: 10, diurnal: {peakRate: 5, peakHour: 3}}\n",
			want: []string{"functions[0] (a).sync.diurnal.peakRate: 5 is below the base rate 10"},
		},
		{
			name: "cron and async loads",
			yaml: header + `- name: a
  schedule: "@daily"
  cron: {runDuration: -5s}
- name: b
  tier: async
  async:
    rate: -2
    bursts: [{every: 0s, jobs: 0, jitter: -1s, first: -1s}, {every: 1m, jobs: 1, jitter: 1m}]
    jobDuration: -1s
`,
			want: []string{
				"functions[0] (a).cron.runDuration: must be positive, got -5s",
				"functions[1] (b).async.rate: want a finite number >= 0, got -2",
				"functions[1] (b).async.bursts[0].every: must be positive, got 0s",
				"functions[1] (b).async.bursts[0].jobs: must be at least 1, got 0",
				"functions[1] (b).async.bursts[0].jitter: want 0 <= jitter < every (0s), got -1s",
				"functions[1] (b).async.bursts[0].first: must not be negative, got -1s",
				"functions[1] (b).async.bursts[1].jitter: want 0 <= jitter < every (1m0s), got 1m0s",
				"functions[1] (b).async.jobDuration: must be positive, got -1s",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; error:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateReportsEveryErrorOnce(t *testing.T) {
	_, err := Parse([]byte(header + "- name: a\n  maxInflight: -1\n  sync: {rate: -1}\n- name: b\n  tier: bad\n"))
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Fatalf("%d errors, want 3:\n%v", n, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(header+"- name: web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(header+"- name: web\n  maxInflight: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Load(good); err != nil || len(s.Functions) != 1 {
		t.Fatalf("Load(good) = %v, %v", s, err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "maxInflight") {
		t.Fatalf("Load(bad) error %v should name the file and the field", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	for _, tc := range []struct {
		name, ref, wantErr string
	}{
		{"built-in name", "mixed-small", ""},
		{"file", good, ""},
		{"unknown name", "no-such-scenario", "neither a file nor a built-in scenario (built-in: burst, mixed-small"},
		{"missing file", filepath.Join(dir, "x.yaml"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(tc.ref)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Resolve(%q): %v", tc.ref, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Resolve(%q) error %v, want %q", tc.ref, err, tc.wantErr)
			}
		})
	}
}

func TestBuiltins(t *testing.T) {
	names := BuiltinNames()
	if len(names) == 0 || names[0] == "" {
		t.Fatalf("BuiltinNames = %v", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name {
				t.Errorf("scenario name %q, want the file's %q", s.Name, name)
			}
			if _, err := BuiltinYAML(name); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := Builtin("nope"); err == nil || !strings.Contains(err.Error(), "mixed-small") {
		t.Fatalf("Builtin(nope) error %v should list the built-in scenarios", err)
	}
}

func TestMixedSmall(t *testing.T) {
	s, err := Builtin("mixed-small")
	if err != nil {
		t.Fatal(err)
	}
	tiers := map[policy.Tier]int{}
	asyncCron := 0
	for _, f := range s.Functions {
		tiers[f.Tier]++
		if f.Cron != nil && f.Cron.Async {
			asyncCron++
		}
	}
	if want := map[policy.Tier]int{policy.TierSync: 2, policy.TierCron: 3, policy.TierAsync: 2}; !cmp.Equal(tiers, want) || asyncCron != 1 {
		t.Fatalf("tiers %v (async cron %d), want %v and 1", tiers, asyncCron, want)
	}
	if s.Nodes != (Nodes{Count: 4, CPU: "4", Memory: "8Gi", Pods: 110}) {
		t.Fatalf("nodes %+v", s.Nodes)
	}
	// At the initial replicas the burst of api is rejected in part, the
	// cron function at 0 replicas misses its runs, and every async job
	// eventually runs once scaled.
	m := NewModel(s, 1)
	ready := map[string]int{}
	for _, f := range s.Functions {
		ready[f.Key()] = int(*f.InitialReplicas)
	}
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	run(m, start, 10*time.Minute, time.Second, constant(ready))
	if o := m.Observe("api.openfaas-fn"); o.Rejected429 < 100*180 {
		t.Errorf("api rejected %v during its burst, want about 180 rps × 180s", o.Rejected429)
	}
	if o := m.Observe("report.openfaas-fn"); o.CronMissed != 2 || o.CronFires != 2 {
		t.Errorf("report: fires %d, missed %d; want 2, 2", o.CronFires, o.CronMissed)
	}
	if o := m.Observe("digest.openfaas-fn"); o.Pending != 3 || o.CronRuns != 0 {
		t.Errorf("digest: pending %v, runs %d; want 3, 0", o.Pending, o.CronRuns)
	}
	if o := m.Observe("resize.openfaas-fn"); o.Pending == 0 {
		t.Errorf("resize at 0 replicas has no pending jobs")
	}
}

func TestStartTime(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		name, tz, start string
		want            time.Time
		wantErr         string
	}{
		{"default", "", "", time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), ""},
		{"wall clock in the zone", "Europe/Berlin", "2026-07-01T08:00:00", time.Date(2026, 7, 1, 8, 0, 0, 0, berlin), ""},
		{"RFC 3339", "Europe/Berlin", "2026-07-01T06:00:00Z", time.Date(2026, 7, 1, 8, 0, 0, 0, berlin), ""},
		{"bad", "", "noon", time.Time{}, `start: want an RFC 3339 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Scenario{TimeZone: tc.tz, Start: tc.start}
			got, err := s.StartTime()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) || got.Location().String() != s.Location().String() {
				t.Fatalf("StartTime = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
	if (&Scenario{TimeZone: "Nowhere/Land"}).Location() != time.UTC {
		t.Error("an unknown zone is not UTC")
	}
}
