// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/tierscaler/tierscaler/workload"
)

// handleRate serves /control/rate (see the package documentation).
func (e *Emulator) handleRate(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost, http.MethodDelete) {
		return
	}
	fn := r.URL.Query().Get("function")
	q := r.URL.Query()
	var err error
	switch {
	case r.Method == http.MethodDelete || q.Get("reset") != "":
		err = e.ResetRate(fn)
	case q.Get("rps") == "":
		err = badRequest("parameter rps is required (requests per second), or reset=1")
	default:
		rps, perr := strconv.ParseFloat(q.Get("rps"), 64)
		if perr != nil || math.IsNaN(rps) || math.IsInf(rps, 0) || rps < 0 {
			err = badRequest(fmt.Sprintf("parameter rps: want a number >= 0, got %q", q.Get("rps")))
		} else {
			err = e.SetRate(fn, rps)
		}
	}
	e.answer(w, fn, err)
}

// handleJobs serves /control/jobs.
func (e *Emulator) handleJobs(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	fn := r.URL.Query().Get("function")
	c := r.URL.Query().Get("count")
	n, perr := strconv.Atoi(c)
	var err error
	if perr != nil || n < 1 {
		err = badRequest(fmt.Sprintf("parameter count: want an integer >= 1, got %q", c))
	} else {
		err = e.Enqueue(fn, n)
	}
	e.answer(w, fn, err)
}

// handleFire serves /control/fire.
func (e *Emulator) handleFire(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	fn := r.URL.Query().Get("function")
	e.answer(w, fn, e.Fire(fn))
}

// handleState serves /control/state.
func (e *Emulator) handleState(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, e.State())
}

// badRequest marks a parameter error.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// answer writes err, or the function's state.
func (e *Emulator) answer(w http.ResponseWriter, fn string, err error) {
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, workload.ErrUnknownFunction) {
			status = http.StatusNotFound
		}
		if fn == "" {
			err = badRequest("parameter function is required (name.namespace)")
			status = http.StatusBadRequest
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	st, err := e.FunctionState(fn)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// allow answers 405 unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	for _, m := range methods {
		w.Header().Add("Allow", m)
	}
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("method %s not allowed; use %v", r.Method, methods)})
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// handleGatewayRestart serves /control/gateway/restart.
func (e *Emulator) handleGatewayRestart(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	i := 0
	if v := r.URL.Query().Get("replica"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			e.answerGateway(w, badRequest(fmt.Sprintf("parameter replica: want an integer >= 0, got %q", v)))
			return
		}
		i = n
	}
	err := e.RestartGateway(i)
	if err != nil {
		err = badRequest(err.Error())
	}
	e.answerGateway(w, err)
}

// handleGatewayReplicas serves /control/gateway/replicas.
func (e *Emulator) handleGatewayReplicas(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	v := r.URL.Query().Get("count")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		e.answerGateway(w, badRequest(fmt.Sprintf("parameter count: want an integer >= 1, got %q", v)))
		return
	}
	if err := e.SetGatewayReplicas(n); err != nil {
		e.answerGateway(w, badRequest(err.Error()))
		return
	}
	e.answerGateway(w, nil)
}

// handleSwitch serves a switch: POST ?enabled=true|false.
func (e *Emulator) handleSwitch(set func(bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		v := r.URL.Query().Get("enabled")
		on, err := strconv.ParseBool(v)
		if err != nil {
			e.answerGateway(w, badRequest(fmt.Sprintf("parameter enabled: want true or false, got %q", v)))
			return
		}
		set(on)
		e.answerGateway(w, nil)
	}
}

// handleRedeploy serves /control/redeploy.
func (e *Emulator) handleRedeploy(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	fn := r.URL.Query().Get("function")
	if _, err := e.Resolve(fn); err != nil {
		e.answer(w, fn, err)
		return
	}
	if err := e.Redeploy(r.Context(), fn); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	e.answer(w, fn, nil)
}

// answerGateway writes err, or the gateway's state.
func (e *Emulator) answerGateway(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	e.mu.Lock()
	st := e.gatewayState()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}
