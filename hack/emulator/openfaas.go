// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
)

// writeTimeout bounds one provider write.
const writeTimeout = 5 * time.Second

// Kinds of provider writes (State.Writes).
const (
	WriteCEProvider    = "ce-provider"
	WriteScaleFromZero = "scale-from-zero"
	WriteRedeploy      = "redeploy"
)

// write is one Deployment change the OpenFaaS controls want.
type write struct {
	kind, key string
}

// wantWrites lists the writes of the CE provider's watcher (a function
// Deployment at 0 or above 5) and of the gateway's scale from zero (a
// function at zero with new demand), in key order. Called with the lock
// held, after a tick.
func (e *Emulator) wantWrites() []write {
	var out []write
	if e.ceProvider {
		for _, k := range sortedKeys(e.desired) {
			if _, revert := openfaas.CEWatcherReplicas(e.desired[k]); revert {
				out = append(out, write{WriteCEProvider, k})
			}
		}
	}
	for _, k := range e.model.Keys() {
		o := e.model.Counters(k)
		arrived := o.Offered > e.offered[k]
		e.offered[k] = o.Offered
		desired, deployed := e.desired[k]
		if !e.scaleFromZero || !deployed || desired != 0 {
			continue
		}
		f, _ := e.model.Function(k)
		queued := f.Tier == policy.TierAsync || (f.Tier == policy.TierCron && f.Cron != nil && f.Cron.Async)
		// A synchronous invocation at zero asks for a scale-up when it
		// arrives; the queue-worker keeps invoking while messages wait.
		if (queued && o.Pending > 0) || (!queued && arrived) {
			out = append(out, write{WriteScaleFromZero, k})
		}
	}
	return out
}

// write applies the writes through the provider, each re-checked against
// the Deployment it reads (as faas-netes reads it before it writes), and
// logs what fails.
func (e *Emulator) write(ws []write) {
	for _, w := range ws {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := e.apply(ctx, w)
		cancel()
		if err != nil && !apierrors.IsConflict(err) { // faas-netes ignores conflicts too
			e.opts.Logger.Error("provider write failed", "kind", w.kind, "function", w.key, "err", err)
		}
	}
}

func (e *Emulator) apply(ctx context.Context, w write) error {
	p := e.opts.Provider
	if p == nil {
		return errors.New("no provider to write Deployments through (Options.Provider)")
	}
	d, err := p.Get(ctx, w.key)
	if err != nil {
		return err
	}
	cur := desiredReplicas(d)
	var to int32
	switch w.kind {
	case WriteCEProvider:
		var revert bool
		if to, revert = openfaas.CEWatcherReplicas(cur); !revert || !openfaas.IsFunction(d) {
			return nil
		}
	case WriteScaleFromZero:
		if cur != 0 {
			return nil // someone scaled it already: the gateway only waits
		}
		to = openfaas.ScaleFromZeroReplicas(openfaas.FunctionLabels(d))
		e.mu.Lock()
		ce := e.ceProvider
		e.mu.Unlock()
		if ce {
			if to, err = openfaas.CEScaleRequest(to); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown write %q", w.kind)
	}
	d.Spec.Replicas = &to
	if err := p.Update(ctx, d); err != nil {
		return err
	}
	e.count(w.kind)
	e.opts.Logger.Info("provider write", "kind", w.kind, "function", w.key, "from", cur, "to", to)
	return nil
}

func (e *Emulator) count(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writes[kind]++
}

// RestartGateway restarts gateway replica i (0-based, see
// State.Gateway): its counters reset to nothing, as a gateway restart or
// upgrade resets them; its gateway_service_count comes back at its first
// poll, openfaas.ServicePollInterval later. Invocations in flight through
// it are lost to the metrics (see openfaas.Gateway).
func (e *Emulator) RestartGateway(i int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gw == nil {
		return errors.New("the emulator has not ticked yet")
	}
	e.observe()
	return e.gw.Restart(i, e.last)
}

// SetGatewayReplicas scales the gateway to n replicas: new ones start with
// nothing, removed ones take their series with them.
func (e *Emulator) SetGatewayReplicas(n int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gw == nil {
		return errors.New("the emulator has not ticked yet")
	}
	e.observe()
	return e.gw.SetReplicas(n, e.last)
}

// SetCEProvider turns the OpenFaaS CE provider's Deployment watcher on or
// off. On, every tick puts a function Deployment at 0 back to 1 and one
// above 5 back to 5, and scale from zero asks for at most 5.
func (e *Emulator) SetCEProvider(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ceProvider = on
}

// SetScaleFromZero turns the gateway's scale from zero on or off. On, a
// synchronous invocation of a function without a Ready replica is held
// (FunctionState.Held; not counted as started, as the gateway counts it
// only once forwarded) until a replica is Ready, for at most
// openfaas.ScaleFromZeroTimeout, and a new invocation (or, for a queued
// function, waiting messages) of a function whose desired replicas are 0
// scales it to its com.openfaas.scale.min, or 1.
func (e *Emulator) SetScaleFromZero(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setScaleFromZero(on)
}

func (e *Emulator) setScaleFromZero(on bool) {
	e.scaleFromZero = on
	if on {
		e.model.SetHoldAtZero(openfaas.ScaleFromZeroTimeout)
	} else {
		e.model.SetHoldAtZero(0)
	}
}

// Redeploy does what faas-cli deploy of the scenario's function does to
// its existing Deployment (openfaas.Redeploy): replicas back to
// com.openfaas.scale.min, the Deployment's and the pod template's
// annotations replaced by the function's own (tierscaler's are gone), a
// rollout. It writes through the provider at once.
func (e *Emulator) Redeploy(ctx context.Context, function string) error {
	e.mu.Lock()
	key, err := e.resolve(function)
	fn, _ := e.model.Function(key)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	p := e.opts.Provider
	if p == nil {
		return errors.New("no provider to write Deployments through (Options.Provider)")
	}
	req, err := openfaas.Request(e.scenario.Name, fn)
	if err != nil {
		return err
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := p.Get(ctx, key)
		if err != nil {
			return err
		}
		return p.Update(ctx, openfaas.Redeploy(d, req, e.opts.Clock()))
	})
	if err != nil {
		return fmt.Errorf("redeploying %s: %w", key, err)
	}
	e.count(WriteRedeploy)
	e.opts.Logger.Info("redeployed", "function", key)
	return nil
}

// GatewayState is the modelled gateway.
type GatewayState struct {
	Replicas []openfaas.Replica `json:"replicas"`
	// CEProvider and ScaleFromZero are the switches.
	CEProvider    bool `json:"ceProvider"`
	ScaleFromZero bool `json:"scaleFromZero"`
	// Writes counts the provider writes by kind: ce-provider,
	// scale-from-zero, redeploy.
	Writes map[string]int `json:"writes"`
}

// gatewayState is GatewayState with the lock held.
func (e *Emulator) gatewayState() GatewayState {
	st := GatewayState{CEProvider: e.ceProvider, ScaleFromZero: e.scaleFromZero, Writes: map[string]int{}, Replicas: []openfaas.Replica{}}
	for k, n := range e.writes {
		st.Writes[k] = n
	}
	if e.gw != nil {
		st.Replicas = e.gw.Replicas()
	}
	return st
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
