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
// balance|events|usage …, tables for people and --json for scripts.

const cliUsage = `Management commands (they talk to a running server):
  farebox plans list | get ID | delete ID
  farebox plans create --id pro --price-usd 20 --credits 2000 [--period month] [--rollover-max N] [--overdraft-limit N] [--models 'gpt-4o*,o3'] [--rpm N] [--tpm N]
  farebox customers list | get ID
  farebox customers create --id acme [--name Acme] [--plan pro]
  farebox customers subscribe ID --plan pro [--now]
  farebox keys create CUSTOMER [--name ci] | list CUSTOMER | revoke KEY_ID
  farebox grants create CUSTOMER --amount 100 [--source purchase] [--paid-usd 1] [--expires-at T] [--idempotency-key K]
  farebox balance CUSTOMER
  farebox events send FILE|-        (one CloudEvent, or a JSON array of them)
  farebox prices list | set MODEL --input-per-mtok 250 --output-per-mtok 1000 [...]
  farebox usage [--customer C] [--from T] [--to T] [--group-by model|day|provider|customer]
  farebox report economics [--from DAY] [--to DAY] [--group-by customer|model|provider|day]
  farebox report forecast [--customer C] [--days 7]
Flags for all: --server URL [FAREBOX_SERVER, default http://127.0.0.1:8080]
  --token T [FAREBOX_ADMIN_TOKEN, else ~/.config/farebox/config.json {"server","token"},
  else ./farebox-data/admin-token], --json (print the API's JSON).
`

type cliConfig struct {
	server, token string
	json          bool
	out           io.Writer
}

// cliCommands are the resources the CLI knows.
var cliCommands = map[string]bool{"plans": true, "customers": true, "keys": true, "grants": true, "balance": true, "events": true, "usage": true, "prices": true, "report": true}

func cli(ctx context.Context, resource string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	verb := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && resource != "balance" && resource != "usage" {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(resource+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cliUsage) }
	cfg := cliConfig{out: stdout}
	fs.StringVar(&cfg.server, "server", getenv("FAREBOX_SERVER"), "server URL")
	fs.StringVar(&cfg.token, "token", getenv("FAREBOX_ADMIN_TOKEN"), "admin token")
	fs.BoolVar(&cfg.json, "json", false, "print JSON")
	str := map[string]*string{}
	for _, name := range []string{"id", "name", "plan", "price-usd", "credits", "period", "rollover-max", "overdraft-limit", "models",
		"amount", "source", "paid-usd", "expires-at", "idempotency-key", "customer", "from", "to", "group-by",
		"input-per-mtok", "output-per-mtok", "cached-input-per-mtok", "reasoning-per-mtok", "per-image", "per-audio-second",
		"per-video-second", "per-gpu-second", "per-request", "effective-from", "days"} {
		str[name] = fs.String(name, "", "")
	}
	rpm := fs.Int64("rpm", 0, "")
	tpm := fs.Int64("tpm", 0, "")
	now := fs.Bool("now", false, "")
	// Positional arguments may come before or after the flags.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return &exitError{2, err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if err := cfg.resolve(getenv); err != nil {
		return err
	}
	arg := func(i int, what string) (string, error) {
		if i >= len(pos) {
			return "", &exitError{2, fmt.Errorf("%s %s needs %s", resource, verb, what)}
		}
		return url.PathEscape(pos[i]), nil
	}
	body := func(fields ...string) map[string]any {
		m := map[string]any{}
		for _, f := range fields {
			if v := *str[f]; v != "" {
				m[strings.ReplaceAll(f, "-", "_")] = v
			}
		}
		return m
	}
	var method, path string
	var payload any
	switch resource + " " + verb {
	case "plans list", "plans ":
		method, path = "GET", "/api/v1/plans"
	case "plans get", "plans delete":
		id, err := arg(0, "a plan id")
		if err != nil {
			return err
		}
		method, path = map[string]string{"get": "GET", "delete": "DELETE"}[verb], "/api/v1/plans/"+id
	case "plans create":
		b := body("id", "name", "price-usd", "credits", "period", "rollover-max", "overdraft-limit")
		if *str["models"] != "" {
			b["models"] = strings.Split(*str["models"], ",")
		}
		b["rpm"], b["tpm"] = *rpm, *tpm
		method, path, payload = "POST", "/api/v1/plans", b
	case "customers list", "customers ":
		method, path = "GET", "/api/v1/customers?limit=1000"
	case "customers get":
		id, err := arg(0, "a customer id")
		if err != nil {
			return err
		}
		method, path = "GET", "/api/v1/customers/"+id
	case "customers create":
		method, path, payload = "POST", "/api/v1/customers", body("id", "name", "plan")
	case "customers subscribe":
		id, err := arg(0, "a customer id")
		if err != nil {
			return err
		}
		b := body("plan")
		if *now {
			b["effective"] = "now"
		}
		method, path, payload = "PUT", "/api/v1/customers/"+id+"/subscription", b
	case "keys create", "keys list":
		id, err := arg(0, "a customer id")
		if err != nil {
			return err
		}
		method, path = map[string]string{"create": "POST", "list": "GET"}[verb], "/api/v1/customers/"+id+"/keys"
		if verb == "create" {
			payload = body("name")
		}
	case "keys revoke":
		id, err := arg(0, "a key id")
		if err != nil {
			return err
		}
		method, path = "DELETE", "/api/v1/keys/"+id
	case "grants create":
		id, err := arg(0, "a customer id")
		if err != nil {
			return err
		}
		method, path, payload = "POST", "/api/v1/customers/"+id+"/grants", body("amount", "source", "paid-usd", "expires-at", "idempotency-key")
	case "balance ":
		id, err := arg(0, "a customer id")
		if err != nil {
			return err
		}
		method, path = "GET", "/api/v1/customers/"+id+"/balance"
	case "events send":
		name, err := arg(0, "a file (or - for standard input)")
		if err != nil {
			return err
		}
		var b []byte
		if name == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(pos[0])
		}
		if err != nil {
			return err
		}
		method, path, payload = "POST", "/api/v1/events", json.RawMessage(b)
	case "prices list", "prices ":
		method, path = "GET", "/api/v1/prices"
	case "prices set":
		model, err := arg(0, "a model")
		if err != nil {
			return err
		}
		method, path, payload = "PUT", "/api/v1/prices/"+model, body("input-per-mtok", "output-per-mtok", "cached-input-per-mtok", "reasoning-per-mtok",
			"per-image", "per-audio-second", "per-video-second", "per-gpu-second", "per-request", "effective-from")
	case "report economics", "report forecast":
		q := url.Values{}
		for _, f := range []string{"customer", "from", "to", "group-by", "days"} {
			if v := *str[f]; v != "" {
				q.Set(strings.ReplaceAll(f, "-", "_"), v)
			}
		}
		method, path = "GET", "/api/v1/reports/"+verb+"?"+q.Encode()
	case "usage ":
		q := url.Values{}
		for _, f := range []string{"customer", "from", "to", "group-by"} {
			if v := *str[f]; v != "" {
				q.Set(strings.ReplaceAll(f, "-", "_"), v)
			}
		}
		method, path = "GET", "/api/v1/usage?"+q.Encode()
	default:
		fmt.Fprint(stderr, cliUsage)
		return &exitError{2, fmt.Errorf("unknown command %q", strings.TrimSpace(resource+" "+verb))}
	}
	return cfg.do(ctx, method, path, payload, resource+" "+verb)
}

// resolve fills the server and token from the config file and defaults.
func (c *cliConfig) resolve(getenv func(string) string) error {
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
	"plans":           {"id", "name", "price_usd", "period", "credits", "rollover_max", "overdraft_limit", "models", "rpm", "tpm"},
	"customers":       {"id", "name", "created_at"},
	"keys":            {"id", "prefix", "name", "created_at", "revoked_at"},
	"prices":          {"model", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "reasoning_per_mtok", "per_image", "per_video_second", "per_gpu_second", "effective_from"},
	"usage":           {"key", "requests", "input_tokens", "output_tokens", "credits", "cost_usd"},
	"report forecast": {"customer", "available", "consumed", "burn_per_day", "days_left", "runs_out_at"},
	"report":          {"key", "requests", "revenue_usd", "cost_usd", "margin_usd", "margin_pct", "credits_consumed", "breakage_usd", "uncollected_usd", "partner_share_usd"},
	"events":          {"id", "status", "cost", "error", "message"},
	"lots":            {"id", "source", "priority", "amount", "remaining", "held", "expires_at", "cost_basis_usd"},
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
