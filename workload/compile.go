// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	// Time zones come with the binary: loading one is not I/O and gives the
	// same answer on every machine.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tierscaler/tierscaler/policy"
)

// cronParser is cron-connector's: robfig/cron's standard five fields plus
// descriptors such as @hourly.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// maxDailyBurst bounds a daily burst: it must end before the next one.
const maxDailyBurst = 24 * time.Hour

// compiled is a validated scenario in the form the model runs.
type compiled struct {
	loc       *time.Location
	start     time.Time
	functions []*spec
}

// spec is one validated, defaulted function.
type spec struct {
	fn          Function // defaulted
	key         string
	tier        policy.Tier
	maxInflight int

	// sync
	baseRate, peakRate, peakHour float64
	diurnal                      bool
	bursts                       []burst
	// duration is the time one request, run or job takes.
	duration time.Duration

	// cron
	schedule  cron.Schedule
	cronAsync bool

	// async
	trains  []train
	poisson float64

	// usage: cores and bytes. limCPU and limMem are 0 when unset.
	podCPU, podMem, reqCPU, reqMem float64
	limCPU, limMem                 float64
}

// burst is a compiled Burst: once at start+offset, or daily at timeOfDay.
type burst struct {
	daily     bool
	offset    time.Duration // from the start, when !daily
	timeOfDay time.Duration // since local midnight, when daily
	length    time.Duration
	rps       float64
}

// train is a compiled JobBurst.
type train struct {
	first, every, jitter time.Duration
	jobs                 int
}

var clockRE = regexp.MustCompile(`^(\d{1,2}):(\d{2})(?::(\d{2}))?$`)

// parseAt reads a burst's At: a duration offset or a daily clock time.
func parseAt(s string) (daily bool, d time.Duration, err error) {
	s = strings.TrimSpace(s)
	if m := clockRE.FindStringSubmatch(s); m != nil {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		sec := 0
		if m[3] != "" {
			sec, _ = strconv.Atoi(m[3])
		}
		if h > 23 || mi > 59 || sec > 59 {
			return false, 0, fmt.Errorf("clock time %q out of range", s)
		}
		return true, time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return false, 0, fmt.Errorf("want an offset from the start such as \"90s\" or a daily clock time such as \"13:30\", got %q", s)
	}
	if d < 0 {
		return false, 0, fmt.Errorf("offset %q is negative", s)
	}
	return false, d, nil
}

// parseStart reads Scenario.Start in loc.
func parseStart(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.In(loc), nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 time such as \"2026-03-02T08:00:00Z\" or a wall-clock time such as \"2026-03-02T08:00:00\", got %q", s)
}

// quantity parses an optional non-negative quantity; "" is 0.
func quantity(e *fieldErrors, field, v string) float64 {
	if v == "" {
		return 0
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		e.add(field, "want a Kubernetes quantity such as \"250m\" or \"128Mi\", got %q", v)
		return 0
	}
	f := q.AsApproximateFloat64()
	if f < 0 {
		e.add(field, "must not be negative, got %q", v)
		return 0
	}
	return f
}

func finiteNonNegative(e *fieldErrors, field string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		e.add(field, "want a finite number >= 0, got %v", v)
	}
}

// compile validates s, taking unset fields at their defaults without
// changing s, and returns the runnable form. Every problem is reported.
func compile(s *Scenario) (*compiled, error) {
	e := &fieldErrors{}
	if s == nil {
		e.add("scenario", "is nil")
		return nil, e.err()
	}
	if s.APIVersion != APIVersion {
		e.add("apiVersion", "want %q, got %q", APIVersion, s.APIVersion)
	}
	if s.Kind != Kind {
		e.add("kind", "want %q, got %q", Kind, s.Kind)
	}
	if strings.TrimSpace(s.Name) == "" {
		e.add("name", "is required")
	}
	c := &compiled{loc: time.UTC}
	tz := s.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	if loc, err := time.LoadLocation(tz); err != nil {
		e.add("timeZone", "unknown time zone %q", tz)
	} else {
		c.loc = loc
	}
	start := s.Start
	if start == "" {
		start = DefaultStart
	}
	if t, err := parseStart(start, c.loc); err != nil {
		e.add("start", "%v", err)
	} else {
		c.start = t
	}
	if s.Duration.Duration < 0 {
		e.add("duration", "must not be negative, got %s", s.Duration.Duration)
	}
	if s.Nodes.Count < 0 {
		e.add("nodes.count", "must not be negative, got %d", s.Nodes.Count)
	}
	if s.Nodes.Pods < 0 {
		e.add("nodes.pods", "must not be negative, got %d", s.Nodes.Pods)
	}
	quantity(e, "nodes.cpu", s.Nodes.CPU)
	quantity(e, "nodes.memory", s.Nodes.Memory)
	if s.PodStartLatency.Duration < 0 {
		e.add("podStartLatency", "must not be negative, got %s", s.PodStartLatency.Duration)
	}

	seen := map[string]int{}
	for i := range s.Functions {
		f := withDefaults(s.Functions[i])
		field := fmt.Sprintf("functions[%d]", i)
		if f.Name != "" {
			field = fmt.Sprintf("functions[%d] (%s)", i, f.Name)
		}
		sp := compileFunction(e, field, f, c.loc)
		if sp == nil {
			continue
		}
		if j, dup := seen[sp.key]; dup {
			e.add(field, "function %s is also functions[%d]", sp.key, j)
			continue
		}
		seen[sp.key] = i
		c.functions = append(c.functions, sp)
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// compileFunction validates one defaulted function. It returns nil only
// when the function cannot be identified (its errors are in e either way).
func compileFunction(e *fieldErrors, field string, f Function, loc *time.Location) *spec {
	at := func(sub string) string { return field + "." + sub }
	sp := &spec{fn: f, key: Key(f.Name, f.Namespace), tier: f.Tier, maxInflight: int(f.MaxInflight)}
	ok := true
	if f.Name == "" {
		e.add(at("name"), "is required")
		ok = false
	} else if msgs := validation.IsDNS1123Label(f.Name); len(msgs) > 0 {
		e.add(at("name"), "%q is not a DNS-1123 label: %s", f.Name, strings.Join(msgs, "; "))
		ok = false
	}
	if msgs := validation.IsDNS1123Label(f.Namespace); len(msgs) > 0 {
		e.add(at("namespace"), "%q is not a DNS-1123 label: %s", f.Namespace, strings.Join(msgs, "; "))
		ok = false
	}
	if !f.Tier.Valid() {
		e.add(at("tier"), "unknown tier %q (want sync, cron or async)", f.Tier)
	}

	// Replicas.
	min, max, initial := *f.MinReplicas, f.MaxReplicas, *f.InitialReplicas
	if min < 0 {
		e.add(at("minReplicas"), "must not be negative, got %d", min)
	}
	if max < 1 {
		e.add(at("maxReplicas"), "must be at least 1, got %d", max)
	}
	if min > max && max >= 1 {
		e.add(at("minReplicas"), "%d is above maxReplicas %d", min, max)
	}
	if initial < 0 || initial > max {
		e.add(at("initialReplicas"), "want 0..maxReplicas (%d), got %d", max, initial)
	}
	if f.MaxInflight < 1 {
		e.add(at("maxInflight"), "must be at least 1, got %d", f.MaxInflight)
	}

	// Resources.
	reqCPU := quantity(e, at("requests.cpu"), f.Requests.CPU)
	reqMem := quantity(e, at("requests.memory"), f.Requests.Memory)
	sp.limCPU = quantity(e, at("limits.cpu"), f.Limits.CPU)
	sp.limMem = quantity(e, at("limits.memory"), f.Limits.Memory)
	if sp.limCPU > 0 && reqCPU > sp.limCPU {
		e.add(at("requests.cpu"), "%s is above limits.cpu %s", f.Requests.CPU, f.Limits.CPU)
	}
	if sp.limMem > 0 && reqMem > sp.limMem {
		e.add(at("requests.memory"), "%s is above limits.memory %s", f.Requests.Memory, f.Limits.Memory)
	}
	sp.podCPU = quantity(e, at("usage.pod.cpu"), f.Usage.Pod.CPU)
	sp.podMem = quantity(e, at("usage.pod.memory"), f.Usage.Pod.Memory)
	sp.reqCPU = quantity(e, at("usage.perRequest.cpu"), f.Usage.PerRequest.CPU)
	sp.reqMem = quantity(e, at("usage.perRequest.memory"), f.Usage.PerRequest.Memory)

	// Schedule and load blocks: only the tier's.
	if f.Tier == policy.TierCron {
		if strings.TrimSpace(f.Schedule) == "" {
			e.add(at("schedule"), "a cron function needs a schedule")
		} else if strings.HasPrefix(strings.TrimSpace(f.Schedule), "TZ=") || strings.HasPrefix(strings.TrimSpace(f.Schedule), "CRON_TZ=") {
			e.add(at("schedule"), "%q: a time zone prefix is not supported; set the scenario's timeZone", f.Schedule)
		} else if sched, err := cronParser.Parse(strings.TrimSpace(f.Schedule)); err != nil {
			e.add(at("schedule"), "%q: %v", f.Schedule, err)
		} else {
			if ss, ok := sched.(*cron.SpecSchedule); ok {
				ss.Location = loc
			}
			sp.schedule = sched
		}
	} else if f.Schedule != "" {
		e.add(at("schedule"), "only a cron function has a schedule (tier is %s)", f.Tier)
	}
	if f.Sync != nil && f.Tier != policy.TierSync {
		e.add(at("sync"), "only a sync function has a sync load (tier is %s)", f.Tier)
	}
	if f.Cron != nil && f.Tier != policy.TierCron {
		e.add(at("cron"), "only a cron function has a cron load (tier is %s)", f.Tier)
	}
	if f.Async != nil && f.Tier != policy.TierAsync {
		e.add(at("async"), "only an async function has an async load (tier is %s)", f.Tier)
	}
	switch f.Tier {
	case policy.TierSync:
		compileSync(e, at("sync"), f.Sync, sp)
	case policy.TierCron:
		sp.duration = f.Cron.RunDuration.Duration
		sp.cronAsync = f.Cron.Async
		if sp.duration <= 0 {
			e.add(at("cron.runDuration"), "must be positive, got %s", sp.duration)
		}
	case policy.TierAsync:
		compileAsync(e, at("async"), f.Async, sp)
	}
	if !ok {
		return nil
	}
	return sp
}

func compileSync(e *fieldErrors, field string, l *SyncLoad, sp *spec) {
	at := func(sub string) string { return field + "." + sub }
	finiteNonNegative(e, at("rate"), l.Rate)
	sp.baseRate = l.Rate
	if d := l.Diurnal; d != nil {
		finiteNonNegative(e, at("diurnal.peakRate"), d.PeakRate)
		if d.PeakRate < l.Rate {
			e.add(at("diurnal.peakRate"), "%v is below the base rate %v", d.PeakRate, l.Rate)
		}
		if math.IsNaN(d.PeakHour) || d.PeakHour < 0 || d.PeakHour >= 24 {
			e.add(at("diurnal.peakHour"), "want an hour in [0, 24), got %v", d.PeakHour)
		}
		sp.diurnal, sp.peakRate, sp.peakHour = true, d.PeakRate, d.PeakHour
	}
	for j, b := range l.Bursts {
		bf := fmt.Sprintf("%s.bursts[%d]", field, j)
		daily, d, err := parseAt(b.At)
		if err != nil {
			e.add(bf+".at", "%v", err)
		}
		if b.For.Duration <= 0 {
			e.add(bf+".for", "must be positive, got %s", b.For.Duration)
		} else if daily && b.For.Duration > maxDailyBurst {
			e.add(bf+".for", "a daily burst lasts at most 24h, got %s", b.For.Duration)
		}
		if math.IsNaN(b.RPS) || math.IsInf(b.RPS, 0) || b.RPS <= 0 {
			e.add(bf+".rps", "want a finite number > 0, got %v", b.RPS)
		}
		bu := burst{daily: daily, length: b.For.Duration, rps: b.RPS}
		if daily {
			bu.timeOfDay = d
		} else {
			bu.offset = d
		}
		sp.bursts = append(sp.bursts, bu)
	}
	sp.duration = l.RequestDuration.Duration
	if sp.duration <= 0 {
		e.add(at("requestDuration"), "must be positive, got %s", sp.duration)
	}
}

func compileAsync(e *fieldErrors, field string, l *AsyncLoad, sp *spec) {
	at := func(sub string) string { return field + "." + sub }
	finiteNonNegative(e, at("rate"), l.Rate)
	sp.poisson = l.Rate
	for j, b := range l.Bursts {
		bf := fmt.Sprintf("%s.bursts[%d]", field, j)
		t := train{every: b.Every.Duration, jitter: b.Jitter.Duration, jobs: b.Jobs, first: b.Every.Duration}
		if b.First != nil {
			t.first = b.First.Duration
		}
		if t.every <= 0 {
			e.add(bf+".every", "must be positive, got %s", t.every)
		}
		if t.jobs < 1 {
			e.add(bf+".jobs", "must be at least 1, got %d", t.jobs)
		}
		if t.jitter < 0 || (t.every > 0 && t.jitter >= t.every) {
			e.add(bf+".jitter", "want 0 <= jitter < every (%s), got %s", t.every, t.jitter)
		}
		if t.first < 0 {
			e.add(bf+".first", "must not be negative, got %s", t.first)
		}
		sp.trains = append(sp.trains, t)
	}
	sp.duration = l.JobDuration.Duration
	if sp.duration <= 0 {
		e.add(at("jobDuration"), "must be positive, got %s", sp.duration)
	}
}
