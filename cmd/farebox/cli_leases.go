package main

import (
	"fmt"
	"strconv"
	"strings"
)

// The CLI of compute leasing: farebox pools …, farebox leases ….

var (
	argPool  = cliArg{"ID", "a pool id"}
	argLease = cliArg{"LEASE", "a lease id"}
)

// poolFlags are the flags a pool is made or changed with; integers are
// text here so that a change says only what it sets (0 is a value).
func poolFlags() []cliFlag {
	return []cliFlag{
		textFlag("gpus", "the pool's GPUs, an integer `N`"),
		textFlag("reserved-for-inference", "`N` GPUs kept for own inference, never leased"),
		textFlag("cost-usd-per-gpu-hour", "what a GPU-hour costs you, in `USD`"),
		textFlag("spot-notice-seconds", "`SECONDS` spot leases are safe from firm bookings (default 0)"),
		textFlag("deployments", "the routing `DEPLOYMENTS` its inference GPUs serve, comma-separated"),
		textFlag("on-demand", "`CREDITS` per GPU-hour of on-demand leases"+amountNote),
		textFlag("reserved", "`CREDITS` per GPU-hour of reserved leases"+amountNote),
		textFlag("spot", "`CREDITS` per GPU-hour of spot leases"+amountNote),
		textFlag("effective-from", "when these prices take effect, `RFC3339` (default now)"),
	}
}

// poolBody is the JSON of the pool flags that were set.
func poolBody(in cliInput) (map[string]any, error) {
	b := in.body("cost-usd-per-gpu-hour")
	for _, f := range []string{"gpus", "reserved-for-inference", "spot-notice-seconds"} {
		if v := *in.str[f]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, &exitError{2, fmt.Errorf("--%s: %q is not an integer", f, v)}
			}
			b[strings.ReplaceAll(f, "-", "_")] = n
		}
	}
	if d := *in.str["deployments"]; d != "" {
		b["deployments"] = strings.Split(d, ",")
	}
	if prices := in.body("on-demand", "reserved", "spot", "effective-from"); len(prices) > 0 {
		b["prices"] = prices
	}
	return b, nil
}

func leaseCommands() []cliCommand {
	window := []cliFlag{textFlag("from", "from this time, `RFC3339` or a day"), textFlag("to", "up to this time, `RFC3339` or a day")}
	return []cliCommand{
		{name: "pools list", about: "List the GPU pools.", request: get("/api/v1/pools")},
		{name: "pools get", synopsis: "ID", args: []cliArg{argPool}, about: "Show a pool: its size, cost, inference reservation and prices.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/pools/" + in.seg(0), nil}, nil
			}},
		{name: "pools create", synopsis: "--id ID --gpus N --on-demand P --reserved P --spot P [flags]",
			about: `Create a GPU pool to lease.
A pool is GPUs of one type in one region, what a GPU-hour costs you, the GPUs kept for
your own inference (never leased), and the prices of its leases in credits per GPU-hour.`,
			flags: append([]cliFlag{textFlag("id", "the pool's `ID`"), textFlag("gpu-type", "its GPUs' type, such as H100"), textFlag("region", "where it is")}, poolFlags()...),
			request: func(in cliInput) (cliRequest, error) {
				b, err := poolBody(in)
				for k, v := range in.body("id", "gpu-type", "region") {
					b[k] = v
				}
				return cliRequest{"POST", "/api/v1/pools", b}, err
			}},
		{name: "pools update", synopsis: "ID [--gpus N] [--reserved-for-inference N] [--spot P] [flags]", args: []cliArg{argPool},
			about: `Change a pool: its size, inference reservation, cost or prices.
A change that would leave a reserved or on-demand lease without its GPUs is refused
(no_capacity, at the first instant that lacks them); spot leases are pre-empted
instead. Prices given make a new version from --effective-from.`,
			flags: poolFlags(),
			request: func(in cliInput) (cliRequest, error) {
				b, err := poolBody(in)
				return cliRequest{"PATCH", "/api/v1/pools/" + in.seg(0), b}, err
			}},
		{name: "pools utilization", synopsis: "ID [--from T] [--to T]", args: []cliArg{argPool},
			about: "Show a pool's utilization: allocated ÷ available GPU-hours.\nBy class and tenant over [from, to) (default the last 24 hours), beside own inference's\nreservation and measured use.",
			flags: window,
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/pools/" + in.seg(0) + "/utilization?" + in.query("from", "to"), nil}, nil
			}},
		{name: "pools availability", synopsis: "ID [--from T] [--to T]", args: []cliArg{argPool},
			about: "Show a pool's free GPUs per hour: what could still be leased.\nOver [from, to) (default the next 7 days).",
			flags: window,
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/pools/" + in.seg(0) + "/availability?" + in.query("from", "to"), nil}, nil
			}},
		{name: "leases list", synopsis: "[--customer C] [--pool P] [--state S] [flags]",
			about: "List leases (the first 1,000).\nOf a customer, a pool, in a state: scheduled, active, ended or preempted.",
			flags: []cliFlag{textFlag("customer", "only this `CUSTOMER`'s"), textFlag("pool", "only this `POOL`'s"), textFlag("state", "scheduled, active, ended or preempted")},
			request: func(in cliInput) (cliRequest, error) {
				q := in.query("customer", "pool", "state")
				if q != "" {
					q += "&"
				}
				return cliRequest{"GET", "/api/v1/leases?" + q + "limit=1000", nil}, nil
			}},
		{name: "leases get", synopsis: "LEASE", args: []cliArg{argLease}, about: "Show a lease: its window, state, holds and charges.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/leases/" + in.seg(0), nil}, nil
			}},
		{name: "leases book", synopsis: "--customer C --pool P --gpus N --class reserved|on_demand|spot [flags]",
			about: `Book a lease of a pool's GPUs.
It is admitted only where the pool has its GPUs at every instant of its window (else
no_capacity, at the first instant that lacks them), and its first hold is taken at
once: a reserved lease's whole window, an hour of an on-demand or spot one.`,
			flags: []cliFlag{textFlag("customer", "the tenant, a `CUSTOMER`"), textFlag("pool", "the `POOL`"), textFlag("gpus", "how many GPUs, an integer `N`"),
				textFlag("class", "reserved, on_demand or spot"), textFlag("start", "when it starts, `RFC3339` (default now)"),
				textFlag("end", "when it ends, `RFC3339` (required for reserved; default open-ended)"),
				textFlag("idempotency-key", "a `KEY` that makes a retry safe")},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("customer", "pool", "class", "start", "end", "idempotency-key")
				if v := *in.str["gpus"]; v != "" {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return cliRequest{}, &exitError{2, fmt.Errorf("--gpus: %q is not an integer", v)}
					}
					b["gpus"] = n
				}
				return cliRequest{"POST", "/api/v1/leases", b}, nil
			}},
		{name: "leases end", synopsis: "LEASE", args: []cliArg{argLease},
			about: "End a lease now and settle it.\nOn-demand and spot pay for the seconds they ran; a reserved lease pays its whole window.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"POST", "/api/v1/leases/" + in.seg(0) + "/end", nil}, nil
			}},
	}
}
