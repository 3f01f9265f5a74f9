package ui_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"farebox/ui/uitest"
)

var keyRowRe = regexp.MustCompile(`(?s)<tr data-key="([^"]+)">(.*?)</tr>`)
var colRe = regexp.MustCompile(`(?s)<td class="num" data-col="(budget|remaining)">([^<]*)</td>`)

// keyCols are the budget and remaining columns of each key's row.
func keyCols(page string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, m := range keyRowRe.FindAllStringSubmatch(page, -1) {
		cols := map[string]string{}
		for _, c := range colRe.FindAllStringSubmatch(m[2], -1) {
			cols[c[1]] = html.UnescapeString(c[2])
		}
		out[m[1]] = cols
	}
	return out
}

type apiKey struct {
	ID              string  `json:"id"`
	Budget          *string `json:"budget"`
	BudgetPeriod    string  `json:"budget_period"`
	BudgetRemaining *string `json:"budget_remaining"`
	RPM             int64   `json:"rpm"`
}

func (e *env) apiKeys(customer string) map[string]apiKey {
	e.T.Helper()
	var list struct{ Data []apiKey }
	if err := json.Unmarshal(e.API("GET", "/api/v1/customers/"+customer+"/keys", "", 200), &list); err != nil {
		e.T.Fatal(err)
	}
	out := map[string]apiKey{}
	for _, k := range list.Data {
		out[k.ID] = k
	}
	return out
}

// TestKeysBudgets: the customer's keys page and the operator's customer
// page show each key's budget and what remains of it exactly as GET
// /api/v1/customers/{id}/keys answers them, after spending; a key without
// a budget may create a key with one from the form; a session whose key
// has a budget sees the keys but is offered no form, and its POSTs to
// create or revoke are refused 403.
func TestKeysBudgets(t *testing.T) {
	e := newEnv(t)
	var k struct{ ID, Key string }
	json.Unmarshal(e.API("POST", "/api/v1/customers/acme/keys", `{"name":"team","budget":"3","budget_period":"day","rpm":30}`, 201), &k)
	for i := range 3 {
		e.Chat(k.Key, "gpt-4o-mini", "Spend a little of the team's budget, please: "+strings.Repeat("x", i), 200)
	}
	want := e.apiKeys("acme")
	if r := want[k.ID].BudgetRemaining; r == nil || *r == "3" {
		t.Fatalf("the team key's remaining budget %v: the chats spent none of it", r)
	}

	owner := e.Browser()
	owner.SignIn(e.acmeKey)
	_, page := owner.Do("GET", "/ui/account/keys", nil)
	admin := e.Browser()
	admin.SignIn(adminToken)
	_, custPage := admin.Do("GET", "/ui/admin/customers/acme", nil)
	for name, p := range map[string]string{"the customer's keys page": page, "the operator's customer page": custPage} {
		got := keyCols(p)
		for id, w := range want {
			budget, remaining := "—", "—"
			if w.Budget != nil {
				budget, remaining = *w.Budget+" / "+w.BudgetPeriod, *w.BudgetRemaining
			}
			if uitest.Figure(got[id]["budget"]) != uitest.Figure(budget) || uitest.Figure(got[id]["remaining"]) != remaining {
				t.Errorf("%s, key %s: budget %q remaining %q; the API's %q %q", name, id, got[id]["budget"], got[id]["remaining"], budget, remaining)
			}
		}
	}

	// A key without a budget makes one with a budget.
	res, page := owner.Do("POST", "/ui/account/keys", url.Values{"csrf": {owner.CSRF("/ui/account/keys")}, "name": {"script"}, "budget": {"12.5"},
		"budget_period": {"total"}, "rpm": {"10"}})
	if res.StatusCode != 200 || !strings.Contains(page, `id="new-key"`) {
		t.Fatalf("creating a budgeted key: %d", res.StatusCode)
	}
	var made *apiKey
	for id, k := range e.apiKeys("acme") {
		if _, old := want[id]; !old {
			made = &k
		}
	}
	if made == nil || made.Budget == nil || *made.Budget != "12.5" || made.BudgetPeriod != "total" || *made.BudgetRemaining != "12.5" || made.RPM != 10 {
		t.Fatalf("the key made by the form: %+v", made)
	}
	if got := keyCols(page)[made.ID]; uitest.Figure(got["budget"]) != "12.5 / total" || uitest.Figure(got["remaining"]) != "12.5" {
		t.Fatalf("the new key's row: %v", got)
	}
	if res, _ := owner.Do("POST", "/ui/account/keys", url.Values{"csrf": {owner.CSRF("/ui/account/keys")}, "name": {"bad"}, "budget": {"-1"}}); res.StatusCode != 400 {
		t.Fatalf("a negative budget: %d, want 400", res.StatusCode)
	}

	// The budgeted key's own session: it sees, it cannot manage.
	team := e.Browser()
	team.SignIn(k.Key)
	_, page = team.Do("GET", "/ui/account/keys", nil)
	if !strings.Contains(page, `id="limited"`) || strings.Contains(page, `id="create-key"`) || strings.Contains(page, "/revoke") {
		t.Fatal("a budgeted key's session is offered the key forms")
	}
	if len(keyCols(page)) != len(want)+1 {
		t.Fatalf("a budgeted key's session sees %d keys, want %d", len(keyCols(page)), len(want)+1)
	}
	tok := team.CSRF("/ui/account/keys")
	if res, _ := team.Do("POST", "/ui/account/keys", url.Values{"csrf": {tok}, "name": {"more"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a budgeted key creating a key: %d, want 403", res.StatusCode)
	}
	if res, _ := team.Do("POST", "/ui/account/keys/"+e.acmeID+"/revoke", url.Values{"csrf": {tok}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a budgeted key revoking a key: %d, want 403", res.StatusCode)
	}
	if n := len(e.apiKeys("acme")); n != len(want)+1 {
		t.Fatalf("%d keys after the refused forms, want %d", n, len(want)+1)
	}
}
