package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The CLI over the management API: farebox plans|customers|keys|grants|
// balance|events|prices|usage|report|pools|leases …, tables for people and --json for
// scripts. Each command has its own flags: a flag another command takes is
// a usage error here, not silently ignored.

// cliConfig is where a management command sends its request, and how it
// shows the answer.
type cliConfig struct {
	server, token string
	json          bool
	out           io.Writer
}

// cliCommand is one management command: its positional arguments (all
// required), its flags, and the request it sends.
type cliCommand struct {
	name, synopsis, about string
	args                  []cliArg
	flags                 []cliFlag
	request               func(in cliInput) (cliRequest, error)
}

type cliArg struct{ name, what string } // "CUSTOMER", "a customer id"

type flagKind int

const (
	flagString flagKind = iota
	flagInt
	flagBool
)

// cliFlag is a flag of a management command. A string flag named a-b is
// the API's field a_b.
type cliFlag struct {
	name, usage string
	kind        flagKind
}

func textFlag(name, usage string) cliFlag { return cliFlag{name: name, usage: usage} }

// cliInput is what a command was given.
type cliInput struct {
	args []string
	str  map[string]*string
	num  map[string]*int64
	on   map[string]*bool
}

type cliRequest struct {
	method, path string
	payload      any
}

// seg is positional argument i as a path segment.
func (in cliInput) seg(i int) string { return url.PathEscape(in.args[i]) }

// body is the JSON object of the named string flags that were set.
func (in cliInput) body(names ...string) map[string]any {
	m := map[string]any{}
	for _, f := range names {
		if v := *in.str[f]; v != "" {
			m[strings.ReplaceAll(f, "-", "_")] = v
		}
	}
	return m
}

// query is the query string of the named string flags that were set.
func (in cliInput) query(names ...string) string {
	q := url.Values{}
	for _, f := range names {
		if v := *in.str[f]; v != "" {
			q.Set(strings.ReplaceAll(f, "-", "_"), v)
		}
	}
	return q.Encode()
}

func get(path string) func(cliInput) (cliRequest, error) {
	return func(cliInput) (cliRequest, error) { return cliRequest{"GET", path, nil}, nil }
}

var (
	argPlan     = cliArg{"ID", "a plan id"}
	argCustomer = cliArg{"CUSTOMER", "a customer id"}
	amountNote  = " (a decimal: 2000, 0.5)"
	priceFlags  = []string{"input-per-mtok", "output-per-mtok", "cached-input-per-mtok", "reasoning-per-mtok",
		"per-image", "per-audio-second", "per-video-second", "per-gpu-second", "per-request"}
)

// cliCommands lists the management commands in help's order.
func cliCommands() []cliCommand {
	prices := []cliFlag{
		textFlag("input-per-mtok", "credits per million input tokens"),
		textFlag("output-per-mtok", "credits per million output tokens"),
		textFlag("cached-input-per-mtok", "credits per million cached input tokens"),
		textFlag("reasoning-per-mtok", "credits per million reasoning tokens"),
		textFlag("per-image", "credits per image"),
		textFlag("per-audio-second", "credits per second of audio"),
		textFlag("per-video-second", "credits per second of video"),
		textFlag("per-gpu-second", "credits per GPU-second"),
		textFlag("per-request", "credits per request"),
		textFlag("effective-from", "when this version takes effect, `RFC3339` (default now)"),
	}
	return []cliCommand{
		{name: "plans list", about: "List the plans.", request: get("/api/v1/plans")},
		{name: "plans get", synopsis: "ID", args: []cliArg{argPlan}, about: "Show one plan.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/plans/" + in.seg(0), nil}, nil
			}},
		{name: "plans create", synopsis: "--id ID --price-usd USD --credits N [flags]",
			about: `Create a plan.
A plan has a price per period and the credits each period grants. A customer on it
gets each period's credits as a subscription lot (cost basis price ÷ credits).`,
			flags: []cliFlag{textFlag("id", "the plan's `ID`"), textFlag("name", "its display name"),
				textFlag("price-usd", "price per period, in `USD`"), textFlag("credits", "credits granted each period"+amountNote),
				textFlag("period", "day, week, month or year (default month)"),
				textFlag("rollover-max", "most credits carried into the next period"+amountNote),
				textFlag("overdraft-limit", "credit a customer may draw beyond its lots"+amountNote),
				textFlag("models", "models allowed, comma-separated globs such as `'gpt-4o*,o3'` (default any)"),
				{name: "rpm", usage: "requests per minute (0: unlimited)", kind: flagInt},
				{name: "tpm", usage: "tokens per minute (0: unlimited)", kind: flagInt},
				textFlag("downgrade", "cheaper models served instead of a refusal, such as `gpt-4o=gpt-4o-mini,o3=o4-mini`"),
				textFlag("low-balance", "customers' default balance.low threshold"+amountNote),
				{name: "expiring-days", usage: "customers' default credits.expiring lead, in days", kind: flagInt}},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("id", "name", "price-usd", "credits", "period", "rollover-max", "overdraft-limit", "low-balance")
				if m := *in.str["models"]; m != "" {
					b["models"] = strings.Split(m, ",")
				}
				if d := *in.str["downgrade"]; d != "" {
					m := map[string]string{}
					for _, pair := range strings.Split(d, ",") {
						from, to, ok := strings.Cut(pair, "=")
						if !ok || from == "" || to == "" {
							return cliRequest{}, &exitError{2, fmt.Errorf("--downgrade %q: want MODEL=CHEAPER pairs, comma-separated", d)}
						}
						m[from] = to
					}
					b["downgrade"] = m
				}
				if n := *in.num["expiring-days"]; n != 0 {
					b["expiring_days"] = n
				}
				b["rpm"], b["tpm"] = *in.num["rpm"], *in.num["tpm"]
				return cliRequest{"POST", "/api/v1/plans", b}, nil
			}},
		{name: "plans delete", synopsis: "ID", args: []cliArg{argPlan},
			about: "Delete a plan.\nIt is refused (409) while a customer is on it.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"DELETE", "/api/v1/plans/" + in.seg(0), nil}, nil
			}},
		{name: "customers list", about: "List the customers (the first 1,000).", request: get("/api/v1/customers?limit=1000")},
		{name: "customers get", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "Show one customer.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/customers/" + in.seg(0), nil}, nil
			}},
		{name: "customers create", synopsis: "--id ID [--name NAME] [--plan PLAN] [flags]",
			about: `Create a customer, subscribed to a plan if one is named.
The first period starts now and its credits are granted at once.`,
			flags: []cliFlag{textFlag("id", "the customer's `ID`"), textFlag("name", "its display name"), textFlag("plan", "the `PLAN` it subscribes to")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"POST", "/api/v1/customers", in.body("id", "name", "plan")}, nil
			}},
		{name: "customers subscribe", synopsis: "CUSTOMER --plan PLAN [--now] [flags]", args: []cliArg{argCustomer},
			about: `Move a customer to another plan.
The change waits for the period's end; with --now a period of the new plan starts at once.`,
			flags: []cliFlag{textFlag("plan", "the new `PLAN`"), {name: "now", usage: "start a period of the new plan now, with its credits", kind: flagBool}},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("plan")
				if *in.on["now"] {
					b["effective"] = "now"
				}
				return cliRequest{"PUT", "/api/v1/customers/" + in.seg(0) + "/subscription", b}, nil
			}},
		{name: "keys create", synopsis: "CUSTOMER [--name NAME] [--budget N [--budget-period day|month|total]] [--rpm N] [flags]", args: []cliArg{argCustomer},
			about: `Create an API key for a customer.
The key is shown once: only its hash is kept. With --budget its requests may spend at
most that much per period (default month), held exactly: past it they get 402
key_budget_exceeded. --rpm is the key's own rate, beside its plan's.`,
			flags: []cliFlag{textFlag("name", "what the key is for, such as ci"), textFlag("budget", "credits the key may spend per period"+amountNote),
				textFlag("budget-period", "day, month or total (default month)"), {name: "rpm", usage: "the key's own requests per minute (0: the plan's only)", kind: flagInt}},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("name", "budget", "budget-period")
				if n := *in.num["rpm"]; n != 0 {
					b["rpm"] = n
				}
				return cliRequest{"POST", "/api/v1/customers/" + in.seg(0) + "/keys", b}, nil
			}},
		{name: "keys list", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "List a customer's keys (never the keys themselves).",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/customers/" + in.seg(0) + "/keys", nil}, nil
			}},
		{name: "keys revoke", synopsis: "KEY_ID", args: []cliArg{{"KEY_ID", "a key id"}}, about: "Revoke a key, at once.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"DELETE", "/api/v1/keys/" + in.seg(0), nil}, nil
			}},
		{name: "grants create", synopsis: "CUSTOMER --amount N [flags]", args: []cliArg{argCustomer},
			about: `Grant credits to a customer.
A grant is a new lot (it repays overdraft debt first). The same --idempotency-key
again returns the first answer and grants nothing more.`,
			flags: []cliFlag{textFlag("amount", "credits granted"+amountNote),
				textFlag("source", "subscription, purchase, promo, refund or adjustment (default purchase)"),
				textFlag("paid-usd", "what was paid for them, in `USD`: their cost basis (default 0)"),
				textFlag("expires-at", "when the lot expires, `RFC3339` (default never)"),
				textFlag("idempotency-key", "a `KEY` that makes a retry safe")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"POST", "/api/v1/customers/" + in.seg(0) + "/grants", in.body("amount", "source", "paid-usd", "expires-at", "idempotency-key")}, nil
			}},
		{name: "balance", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "Show a customer's balance and live lots.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/customers/" + in.seg(0) + "/balance", nil}, nil
			}},
		{name: "events send", synopsis: "FILE|-", args: []cliArg{{"FILE", "a file (or - for standard input)"}},
			about: `Send usage events (CloudEvents) to be metered.
One CloudEvent, or a JSON array of them, from FILE or standard input (-).
Each is accepted, duplicate or rejected on its own.`,
			request: func(in cliInput) (cliRequest, error) {
				var b []byte
				var err error
				if in.args[0] == "-" {
					b, err = io.ReadAll(os.Stdin)
				} else {
					b, err = os.ReadFile(in.args[0])
				}
				return cliRequest{"POST", "/api/v1/events", json.RawMessage(b)}, err
			}},
		{name: "topup checkout", synopsis: "CUSTOMER --credits N --success-url URL [--cancel-url URL] [flags]", args: []cliArg{argCustomer},
			about: `Open a Stripe Checkout page for a customer to buy credits.
It prints the session's id and url. The credits are granted, once, when Stripe's
checkout.session.completed webhook arrives at /webhooks/stripe.`,
			flags: []cliFlag{textFlag("credits", "credits to buy"+amountNote), textFlag("success-url", "where Stripe sends the customer after paying"),
				textFlag("cancel-url", "where Stripe sends a customer who goes back")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"POST", "/api/v1/customers/" + in.seg(0) + "/checkout", in.body("credits", "success-url", "cancel-url")}, nil
			}},
		{name: "topup auto", synopsis: "CUSTOMER --threshold N --credits N [--cooldown 1h] [flags]", args: []cliArg{argCustomer},
			about: `Turn on (or change) a customer's automatic top-up.
When a commit takes its balance below --threshold, one off-session payment buys --credits
with its saved payment method (never twice for one crossing, not again within --cooldown).`,
			flags: []cliFlag{textFlag("threshold", "the balance that triggers it"+amountNote), textFlag("credits", "credits each top-up buys"+amountNote),
				textFlag("cooldown", "no second top-up within this `DURATION` (default 1h)")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"PUT", "/api/v1/customers/" + in.seg(0) + "/auto-topup", in.body("threshold", "credits", "cooldown")}, nil
			}},
		{name: "topup show", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "Show a customer's automatic top-up (404 when it is off).",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/customers/" + in.seg(0) + "/auto-topup", nil}, nil
			}},
		{name: "topup off", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "Turn a customer's automatic top-up off.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"DELETE", "/api/v1/customers/" + in.seg(0) + "/auto-topup", nil}, nil
			}},
		{name: "alerts set", synopsis: "CUSTOMER [--low-balance N] [--expiring-days N] [flags]", args: []cliArg{argCustomer},
			about: "Set a customer's webhook thresholds.\nbalance.low below --low-balance, credits.expiring --expiring-days ahead (0: none).",
			flags: []cliFlag{textFlag("low-balance", "the balance.low threshold"+amountNote), {name: "expiring-days", usage: "days of warning before a lot expires", kind: flagInt}},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("low-balance")
				b["expiring_days"] = *in.num["expiring-days"]
				return cliRequest{"PUT", "/api/v1/customers/" + in.seg(0) + "/alerts", b}, nil
			}},
		{name: "alerts get", synopsis: "CUSTOMER", args: []cliArg{argCustomer}, about: "Show a customer's webhook thresholds (its own, else its plan's).",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/customers/" + in.seg(0) + "/alerts", nil}, nil
			}},
		{name: "webhooks create", synopsis: "--url URL --events TYPE,… [flags]",
			about: `Add a webhook endpoint.
Its secret is shown once: every delivery is signed with it (Farebox-Signature).
Types: balance.low, balance.depleted, credits.expiring, subscription.renewed,
topup.succeeded, topup.failed, key.budget_exceeded, lease.started, lease.ended,
lease.preempted, or * for all.`,
			flags: []cliFlag{textFlag("url", "the endpoint's `URL`"), textFlag("events", "the event types it takes, comma-separated")},
			request: func(in cliInput) (cliRequest, error) {
				b := in.body("url")
				if e := *in.str["events"]; e != "" {
					b["events"] = strings.Split(e, ",")
				}
				return cliRequest{"POST", "/api/v1/webhook-endpoints", b}, nil
			}},
		{name: "webhooks list", about: "List the webhook endpoints.", request: get("/api/v1/webhook-endpoints")},
		{name: "webhooks delete", synopsis: "ENDPOINT", args: []cliArg{{"ENDPOINT", "an endpoint id"}}, about: "Remove a webhook endpoint.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"DELETE", "/api/v1/webhook-endpoints/" + in.seg(0), nil}, nil
			}},
		{name: "webhooks deliveries", synopsis: "ENDPOINT", args: []cliArg{{"ENDPOINT", "an endpoint id"}},
			about: "Show an endpoint's delivery log.\nThe latest deliveries with their status, attempts and last status code.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/webhook-endpoints/" + in.seg(0) + "/deliveries", nil}, nil
			}},
		{name: "webhooks retry", synopsis: "DELIVERY", args: []cliArg{{"DELIVERY", "a delivery id"}}, about: "Send a delivery again now.",
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"POST", "/api/v1/webhook-deliveries/" + in.seg(0) + "/retry", nil}, nil
			}},
		{name: "prices list", about: "List the rate card in force (credits per unit).", request: get("/api/v1/prices")},
		{name: "prices set", synopsis: "MODEL --input-per-mtok N --output-per-mtok N [flags]", args: []cliArg{{"MODEL", "a model"}},
			about: `Set a model's price (a new version).
The version is in force from --effective-from. Usage is priced by the version in
force at its time.`,
			flags: prices,
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"PUT", "/api/v1/prices/" + in.seg(0), in.body(append(priceFlags, "effective-from")...)}, nil
			}},
		{name: "usage", synopsis: "[--customer C] [--from T] [--to T] [--group-by model|day|provider|customer] [flags]",
			about: "Show usage: requests, tokens, credits, cost.\nThe provider's cost in USD, grouped by model, day, provider or customer.",
			flags: []cliFlag{textFlag("customer", "only this `CUSTOMER`"), textFlag("from", "from this time, `RFC3339` or a day"),
				textFlag("to", "up to this time, `RFC3339` or a day"), textFlag("group-by", "model, day, provider or customer")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/usage?" + in.query("customer", "from", "to", "group-by"), nil}, nil
			}},
		{name: "report economics", synopsis: "[--from DAY] [--to DAY] [--group-by customer|model|provider|day|product|plan] [flags]",
			about: `Show revenue, cost and margin.
Over whole UTC days [from, to): revenue, cost, margin, breakage, uncollected credit
and partners' shares (default: the last 30 days, by customer).`,
			flags: []cliFlag{textFlag("customer", "only this `CUSTOMER`"), textFlag("from", "first `DAY` (2026-11-01)"),
				textFlag("to", "the `DAY` after the last"), textFlag("group-by", "customer, model, provider, day, product or plan")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/reports/economics?" + in.query("customer", "from", "to", "group-by"), nil}, nil
			}},
		{name: "report forecast", synopsis: "[--customer C] [--days N] [flags]",
			about: "Show burn rates and when credits run out.\nEach customer's burn rate over --days, and when its available credit runs out\nat that rate.",
			flags: []cliFlag{textFlag("customer", "only this `CUSTOMER`"), textFlag("days", "the burn rate's window in days, 1 to 366 (default 7)")},
			request: func(in cliInput) (cliRequest, error) {
				return cliRequest{"GET", "/api/v1/reports/forecast?" + in.query("customer", "days"), nil}, nil
			}},
	}
}

// runner parses a command's own flags and arguments and sends its request.
func (c cliCommand) runner() runFunc {
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfg := cliConfig{out: stdout}
		in := cliInput{str: map[string]*string{}, num: map[string]*int64{}, on: map[string]*bool{}}
		for _, f := range c.flags {
			switch f.kind {
			case flagInt:
				in.num[f.name] = fs.Int64(f.name, 0, f.usage)
			case flagBool:
				in.on[f.name] = fs.Bool(f.name, false, f.usage)
			default:
				in.str[f.name] = fs.String(f.name, "", f.usage)
			}
		}
		// Defaults are resolved after parsing, so that help never shows
		// the token the environment holds.
		fs.StringVar(&cfg.server, "server", "", "the server's `URL` [FAREBOX_SERVER; default http://127.0.0.1:8080]")
		fs.StringVar(&cfg.token, "token", "", "the admin `TOKEN` [FAREBOX_ADMIN_TOKEN; else the config file, else\n./farebox-data/admin-token]")
		fs.BoolVar(&cfg.json, "json", false, "print the API's JSON instead of a table")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		switch {
		case len(pos) < len(c.args):
			printHelp(stderr, fs)
			a := c.args[len(pos)]
			return &exitError{2, fmt.Errorf("%s needs %s (%s)", c.name, a.name, a.what)}
		case len(pos) > len(c.args):
			printHelp(stderr, fs)
			return &exitError{2, fmt.Errorf("%s: unexpected argument %q", c.name, pos[len(c.args)])}
		}
		in.args = pos
		if err := cfg.resolve(getenv); err != nil {
			return err
		}
		req, err := c.request(in)
		if err != nil {
			return err
		}
		return cfg.do(ctx, req.method, req.path, req.payload, c.name)
	}
}

// resolve fills the server and token from the config file and defaults.
func (c *cliConfig) resolve(getenv func(string) string) error {
	c.server, c.token = cmp(c.server, getenv("FAREBOX_SERVER")), cmp(c.token, getenv("FAREBOX_ADMIN_TOKEN"))
	if home := getenv("HOME"); home != "" && (c.server == "" || c.token == "") {
		if b, err := os.ReadFile(filepath.Join(home, ".config", "farebox", "config.json")); err == nil {
			var f struct{ Server, Token string }
			if err := json.Unmarshal(b, &f); err != nil {
				return fmt.Errorf("~/.config/farebox/config.json: %w", err)
			}
			c.server, c.token = cmp(c.server, f.Server), cmp(c.token, f.Token)
		}
	}
	if c.token == "" {
		dir := envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data")
		if b, err := os.ReadFile(filepath.Join(dir, "admin-token")); err == nil {
			c.token = strings.TrimSpace(string(b))
		}
	}
	c.server = strings.TrimSuffix(cmp(c.server, "http://127.0.0.1:8080"), "/")
	if c.token == "" {
		return &exitError{2, errors.New("no admin token: pass --token, set FAREBOX_ADMIN_TOKEN or run beside ./farebox-data")}
	}
	return nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *cliConfig) do(ctx context.Context, method, path string, payload any, what string) error {
	var rd io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%s answered %s with a body that is not JSON", c.server, resp.Status)
	}
	if resp.StatusCode >= 400 {
		if c.json {
			fmt.Fprintln(c.out, string(raw))
		}
		m, _ := v.(map[string]any)
		e, _ := m["error"].(map[string]any)
		return fmt.Errorf("%s: %v (%v)", resp.Status, e["message"], e["code"])
	}
	if c.json {
		var out bytes.Buffer
		json.Indent(&out, raw, "", "  ")
		fmt.Fprintln(c.out, out.String())
		return nil
	}
	printTable(c.out, what, v)
	return nil
}

// columns chooses what each listing shows.
var columns = map[string][]string{
	"plans":               {"id", "name", "price_usd", "period", "credits", "rollover_max", "overdraft_limit", "models", "rpm", "tpm"},
	"customers":           {"id", "name", "created_at"},
	"keys":                {"id", "prefix", "name", "budget", "budget_period", "budget_remaining", "rpm", "created_at", "revoked_at"},
	"webhooks":            {"id", "url", "events", "created_at"},
	"webhooks deliveries": {"id", "event", "type", "customer", "status", "attempts", "last_status_code", "next_attempt_at", "delivered_at"},
	"prices":              {"model", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "reasoning_per_mtok", "per_image", "per_video_second", "per_gpu_second", "effective_from"},
	"usage":               {"key", "requests", "input_tokens", "output_tokens", "credits", "cost_usd"},
	"report forecast":     {"customer", "available", "consumed", "burn_per_day", "days_left", "runs_out_at"},
	"report":              {"key", "requests", "revenue_usd", "cost_usd", "margin_usd", "margin_pct", "credits_consumed", "breakage_usd", "uncollected_usd", "partner_share_usd"},
	"events":              {"id", "status", "cost", "error", "message"},
	"lots":                {"id", "source", "priority", "amount", "remaining", "held", "expires_at", "cost_basis_usd"},
	"pools":               {"id", "gpu_type", "region", "gpus", "reserved_for_inference", "leasable_gpus", "cost_usd_per_gpu_hour", "prices"},
	"pools availability":  {"start", "free_gpus", "leasable_gpus", "firm_gpus", "spot_gpus"},
	"leases":              {"id", "customer", "pool", "gpus", "class", "state", "start", "end", "held", "charged", "reason"},
}

// printTable shows a list as a table and an object as name: value lines
// (with its lots, for a balance, as a table).
func printTable(w io.Writer, what string, v any) {
	resource := strings.Fields(what)[0]
	m, _ := v.(map[string]any)
	cols, ok := columns[what]
	if !ok {
		cols = columns[resource]
	}
	for _, k := range []string{"data", "rows", "results"} {
		if list, ok := m[k].([]any); ok {
			if t, ok := m["totals"]; ok {
				list = append(list, t)
			}
			table(w, cols, list)
			return
		}
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	slices.Sort(keys)
	for _, k := range keys {
		if k == "lots" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, cell(m[k]))
	}
	tw.Flush()
	if lots, ok := m["lots"].([]any); ok {
		fmt.Fprintln(w, "lots:")
		table(w, columns["lots"], lots)
	}
}

func table(w io.Writer, cols []string, list []any) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, x := range list {
		row, _ := x.(map[string]any)
		var cells []string
		for _, c := range cols {
			cells = append(cells, cell(row[c]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if len(list) == 0 {
		fmt.Fprintln(w, "(none)")
	}
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case []any:
		var parts []string
		for _, p := range x {
			parts = append(parts, cell(p))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}
