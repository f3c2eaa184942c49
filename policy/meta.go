// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Labels, annotations and environment variables tierscaler reads from a
// function. The OpenFaaS ones are faas-netes' and cron-connector's.
const (
	// LabelFunction marks an OpenFaaS function Deployment (faas-netes).
	LabelFunction = "faas_function"
	// LabelScaleMin and LabelScaleMax are OpenFaaS' replica bounds.
	LabelScaleMin = "com.openfaas.scale.min"
	LabelScaleMax = "com.openfaas.scale.max"

	// AnnotationTopic and AnnotationSchedule are cron-connector's.
	AnnotationTopic    = "topic"
	AnnotationSchedule = "schedule"
	// TopicCron is the topic cron-connector picks functions by.
	TopicCron = "cron-function"

	// AnnotationTier sets a function's tier: sync, cron or async.
	AnnotationTier = "tierscaler.io/tier"
	// AnnotationMaxInflight overrides the max_inflight environment variable.
	AnnotationMaxInflight = "tierscaler.io/max-inflight"
	// AnnotationStartupTime is a function's time from scale-up to Ready, a Go
	// duration ("45s"), used for the cron prewarm lead.
	AnnotationStartupTime = "tierscaler.io/startup-time"
	// AnnotationLastRun persists the last observed activity (RFC 3339).
	AnnotationLastRun = "tierscaler.io/last-run"
	// AnnotationActivationRequested records an activation request from an
	// Alertmanager webhook (RFC 3339).
	AnnotationActivationRequested = "tierscaler.io/activation-requested"

	// EnvMaxInflight is of-watchdog's per-replica concurrency limit.
	EnvMaxInflight = "max_inflight"

	// DefaultMinReplicas and DefaultMaxReplicas are OpenFaaS' defaults when
	// the scale labels are absent.
	DefaultMinReplicas = 1
	DefaultMaxReplicas = 20
)

// Meta is what tierscaler reads from a function's labels, annotations and
// container environment.
type Meta struct {
	Tier                Tier
	Schedule            cron.Schedule
	ScheduleSpec        string
	MinReplicas         int32
	MaxReplicas         int32
	MaxInflight         int32
	StartupTime         time.Duration
	LastRun             time.Time
	ActivationRequested time.Time
}

// cronParser is cron-connector's parser: five fields plus descriptors such as
// @hourly, the same as robfig/cron's standard parser.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a 5-field cron schedule as cron-connector does and
// pins it to the policy's time zone. A CRON_TZ= or TZ= prefix is refused:
// cron-connector evaluates schedules in its own local time zone.
func (p *Policy) ParseSchedule(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("schedule %q: a time zone prefix is not supported; set the policy's timeZone", spec)
	}
	if strings.HasPrefix(spec, "@every") {
		// robfig/cron anchors "@every D" to when the entry was added, which
		// cron-connector does whenever it (re)registers the function: its
		// fire times cannot be known from outside, so they cannot be
		// prewarmed for or reserved.
		return nil, fmt.Errorf("schedule %q: @every is anchored to when cron-connector registered the function, which tierscaler cannot know; use a 5-field schedule such as \"*/5 * * * *\"", spec)
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %v", spec, err)
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %q: not a calendar schedule", spec)
	}
	ss.Location = p.Location()
	// robfig/cron gives up after five years without a match: such a
	// schedule ("0 0 30 2 *") never fires. Checked from a fixed instant so
	// that parsing reads no clock.
	if s.Next(neverFiresFrom).IsZero() {
		return nil, fmt.Errorf("schedule %q never fires (no date matches it)", spec)
	}
	return &cachedSchedule{inner: s}, nil
}

// neverFiresFrom is the instant ParseSchedule looks for a first fire from.
var neverFiresFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// cachedSchedule remembers its last two answers: the next fire after t is
// the same for every t in [t, next), so a controller asking every few
// seconds computes each fire time once. Two slots serve the engine's two
// questions per cycle (the next fire after now, and after now minus the
// grace period). It is safe for concurrent use.
type cachedSchedule struct {
	inner cron.Schedule
	mu    sync.Mutex
	slots [2]struct{ from, next time.Time }
	turn  int
}

// Next returns the next fire time after t, in t's location.
func (c *cachedSchedule) Next(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.slots {
		if !s.next.IsZero() && !t.Before(s.from) && t.Before(s.next) {
			return s.next.In(t.Location())
		}
	}
	n := c.inner.Next(t)
	c.slots[c.turn].from, c.slots[c.turn].next = t, n
	c.turn ^= 1
	return n
}

// ParseMeta reads a function's tier, schedule, bounds, concurrency, startup
// time and persisted timestamps. Every problem is reported, each naming the
// label, annotation or variable. A function with a problem is held where it
// is by the controller: bad metadata never makes tierscaler evict anything.
func (p *Policy) ParseMeta(labels, annotations, env map[string]string) (Meta, error) {
	var errs []error
	m := Meta{MinReplicas: DefaultMinReplicas, MaxReplicas: DefaultMaxReplicas}

	isCron := annotations[AnnotationTopic] == TopicCron && annotations[AnnotationSchedule] != ""
	switch t, ok := annotations[AnnotationTier]; {
	case ok:
		m.Tier = Tier(strings.TrimSpace(t))
		if !m.Tier.Valid() {
			errs = append(errs, fmt.Errorf("annotation %s: unknown tier %q (want sync, cron or async)", AnnotationTier, t))
		}
	case isCron:
		m.Tier = TierCron
	default:
		m.Tier = p.DefaultTier
	}
	if m.Tier == TierCron {
		spec := annotations[AnnotationSchedule]
		if spec == "" {
			errs = append(errs, fmt.Errorf("annotation %s: a cron function needs a schedule", AnnotationSchedule))
		} else if s, err := p.ParseSchedule(spec); err != nil {
			errs = append(errs, fmt.Errorf("annotation %s: %v", AnnotationSchedule, err))
		} else {
			m.Schedule, m.ScheduleSpec = s, strings.TrimSpace(spec)
		}
	}

	parseCount := func(where, key, v string, min int32) (int32, bool) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || int32(n) < min {
			errs = append(errs, fmt.Errorf("%s %s: want an integer >= %d, got %q", where, key, min, v))
			return 0, false
		}
		return int32(n), true
	}
	if v, ok := labels[LabelScaleMin]; ok {
		if n, ok := parseCount("label", LabelScaleMin, v, 0); ok {
			m.MinReplicas = n
		}
	}
	if v, ok := labels[LabelScaleMax]; ok {
		if n, ok := parseCount("label", LabelScaleMax, v, 1); ok {
			m.MaxReplicas = n
		}
	}
	if m.MinReplicas > m.MaxReplicas {
		errs = append(errs, fmt.Errorf("label %s=%d is above %s=%d", LabelScaleMin, m.MinReplicas, LabelScaleMax, m.MaxReplicas))
	}
	if v, ok := annotations[AnnotationMaxInflight]; ok {
		if n, ok := parseCount("annotation", AnnotationMaxInflight, v, 0); ok {
			m.MaxInflight = n
		}
	} else if v, ok := env[EnvMaxInflight]; ok {
		if n, ok := parseCount("env", EnvMaxInflight, v, 0); ok {
			m.MaxInflight = n
		}
	}
	if v, ok := annotations[AnnotationStartupTime]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("annotation %s: want a duration such as \"45s\", got %q", AnnotationStartupTime, v))
		} else {
			m.StartupTime = d
		}
	}
	parseTime := func(key string, dst *time.Time) {
		if v, ok := annotations[key]; ok {
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("annotation %s: want an RFC 3339 time, got %q", key, v))
				return
			}
			*dst = t
		}
	}
	parseTime(AnnotationLastRun, &m.LastRun)
	parseTime(AnnotationActivationRequested, &m.ActivationRequested)
	return m, errors.Join(errs...)
}
