// Package billing is the dashboard's pages for money coming in and
// events going out: the customer's top-up page (a checkout for a number
// of credits on the payment provider's page, the automatic top-up's
// settings and its last attempt) and the operator's webhook endpoints,
// each with its deliveries and a retry button. The composition root
// registers them on the dashboard (Register); they read and act through
// the same services the API answers from (payments, notify, the store's
// accounts), so their figures are the API's.
package billing

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	fb "farebox"
	"farebox/ledger"
	"farebox/notify"
	"farebox/payments"
	"farebox/ui"
)

// Deps are what the pages read and act through.
type Deps struct {
	Store    fb.Store
	Payments *payments.Service
	Notify   *notify.Service
}

// The pages' URLs.
const (
	TopUpPath    = "/ui/account/topup"
	CheckoutPath = "/ui/account/topup/checkout"
	WebhooksPath = "/ui/admin/webhooks"
)

type pages struct{ d Deps }

// Register adds the pages to the dashboard: the operator's webhooks
// always; the customer's top-up page, and the overview's checkout button
// in place of the operator's instructions, when a payment provider is
// configured.
func Register(u *ui.UI, d Deps) error {
	p := &pages{d: d}
	list := []ui.Page{
		{Side: ui.Operator, Path: "webhooks", Title: "Webhooks", Order: 25, Handle: p.webhooks},
		{Side: ui.Operator, Path: "webhooks", Method: http.MethodPost, Handle: p.createEndpoint},
		{Side: ui.Operator, Path: "webhooks/{id}", Handle: p.endpoint},
		{Side: ui.Operator, Path: "webhooks/{id}/delete", Method: http.MethodPost, Handle: p.deleteEndpoint},
		{Side: ui.Operator, Path: "webhooks/{id}/deliveries/{delivery}/retry", Method: http.MethodPost, Handle: p.retry},
	}
	if d.Payments.Enabled() {
		list = append(list,
			ui.Page{Side: ui.Customer, Path: "topup", Title: "Top up", Order: 25, Handle: p.topup},
			ui.Page{Side: ui.Customer, Path: "topup/checkout", Method: http.MethodPost, Handle: p.checkout},
			ui.Page{Side: ui.Customer, Path: "topup/auto", Method: http.MethodPost, Handle: p.setAuto},
			ui.Page{Side: ui.Customer, Path: "topup/auto/off", Method: http.MethodPost, Handle: p.autoOff},
		)
	}
	for _, pg := range list {
		if err := u.Register(pg); err != nil {
			return err
		}
	}
	if d.Payments.Enabled() {
		return u.OfferCheckout(CheckoutPath, TopUpPath)
	}
	return nil
}

// The customer's top-up page.

// topup shows what a credit costs, a checkout form, and the automatic
// top-up: its settings and last attempt (what GET
// /api/v1/customers/{id}/auto-topup answers), with forms to change it or
// turn it off for a session whose key has no budget of its own.
func (p *pages) topup(r *ui.Request) (*ui.View, error) {
	ctx := r.Context()
	c := r.Session.Customer
	a, err := p.d.Store.Account(ctx, c)
	if err != nil {
		return nil, err
	}
	ks, err := p.d.Store.Keys(ctx, c)
	if err != nil {
		return nil, err
	}
	limited := ui.Limited(r, ks)
	var secs []ui.Section
	switch r.URL.Query().Get("checkout") {
	case "done":
		secs = append(secs, ui.Note("Thank you. Your payment is being confirmed: the credits are added as soon as Stripe tells Farebox, usually within seconds."))
	case "cancelled":
		secs = append(secs, ui.Note("The checkout was cancelled: nothing was charged."))
	}
	card := ui.Card{Label: "Saved card", Value: "none yet", Note: "your first purchase saves it, for automatic top-ups"}
	switch pay, err := p.d.Store.Payer(ctx, c); {
	case err == nil && pay.PaymentMethod != "":
		card.Value, card.Note = "saved", "automatic top-ups charge it"
	case err != nil && fb.ErrorType(err) != fb.ENotFound:
		return nil, err
	}
	price := p.d.Payments.USDPerCredit()
	priceNote := ""
	if cents, err := p.d.Payments.Cents(1000 * fb.Micro); err == nil {
		priceNote = "1,000 credits: " + ui.Dollars(fb.USD(cents*10_000))
	}
	secs = append(secs,
		ui.Cards{
			{Label: "Available", Value: ui.Credits(ledger.BalanceAt(a, r.Now).Available), Note: "credits"},
			{Label: "Price of a credit", Value: ui.Dollars(price), Note: priceNote},
			card,
		},
		ui.Form{Title: "Buy credits", Action: CheckoutPath, Submit: "Continue to payment",
			Fields: []ui.Field{{Name: "credits", Label: "Credits", Placeholder: "1000", Required: true}}},
		ui.Note("You pay on Stripe's checkout page (the smallest payment is $0.50); Farebox never sees your card."),
	)
	auto, last, err := p.d.Payments.AutoTopup(ctx, c)
	on := err == nil
	if err != nil && fb.ErrorType(err) != fb.ENotFound {
		return nil, err
	}
	fields := []ui.Field{
		{Name: "threshold", Label: "When the balance falls below", Placeholder: "100", Required: true},
		{Name: "credits", Label: "Buy (credits)", Placeholder: "1000", Required: true},
		{Name: "cooldown", Label: "At most once every", Value: "1h", Placeholder: "1h"},
	}
	if on {
		secs = append(secs, ui.Cards{
			{Label: "Automatic top-up", Value: "on", Note: "charges the saved card"},
			{Label: "Below", Value: ui.Credits(auto.Threshold), Note: "credits"},
			{Label: "Buys", Value: ui.Credits(auto.Credits), Note: "credits"},
			{Label: "At most once every", Value: payments.FormatCooldown(auto.Cooldown)},
		})
		fields[0].Value, fields[1].Value, fields[2].Value = auto.Threshold.String(), auto.Credits.String(), payments.FormatCooldown(auto.Cooldown)
	} else {
		secs = append(secs, ui.Cards{{Label: "Automatic top-up", Value: "off", Note: "nothing is bought without you"}})
	}
	if last != nil {
		amount, amountText := last.AmountUSD, ui.Dollars(last.AmountUSD)
		if last.Status == fb.TopupFailed {
			// A failed attempt charged nothing, and one that failed before
			// its payment was priced (no saved card) recorded no amount:
			// show what it was to cost, and that it was not charged.
			amountText = "not charged"
			if amount == 0 {
				amount = p.price(last.Credits)
			}
			if amount != 0 {
				amountText = ui.Dollars(amount) + ", not charged"
			}
		}
		secs = append(secs, ui.Table{Title: "Last automatic top-up", Stack: true,
			Columns: []ui.Column{{Label: "Made"}, {Label: "Credits", Num: true}, {Label: "Amount", Num: true}, {Label: "Status"}, {Label: "Why it failed"}},
			Rows: [][]ui.Cell{{{Text: ui.Stamp(last.CreatedAt)}, {Text: ui.Credits(last.Credits), Sort: fmt.Sprint(int64(last.Credits))},
				{Text: amountText, Sort: fmt.Sprint(int64(amount))}, {Text: last.Status}, {Text: dash(last.Error)}}}})
	}
	if limited {
		secs = append(secs, ui.Note("This session's key has a budget of its own: only a key without one may change automatic top-ups."))
	} else {
		secs = append(secs, ui.Form{Title: "Automatic top-up", Action: TopUpPath + "/auto", Submit: "Save", Fields: fields},
			ui.Note("When a request takes the balance below the threshold, Farebox buys the credits with the saved card: once per crossing, never twice for the same one, and not again within the cooldown."))
		if on {
			secs = append(secs, ui.Form{Action: TopUpPath + "/auto/off", Submit: "Turn automatic top-ups off", Danger: true})
		}
	}
	return &ui.View{Title: "Top up", Sections: secs}, nil
}

// price is what credits cost: the payment an automatic top-up asks for
// (whole cents, rounded up), or the exact price where that is below the
// smallest payment; 0 when it cannot be priced.
func (p *pages) price(credits fb.Amount) fb.USD {
	if cents, err := p.d.Payments.Cents(credits); err == nil {
		return fb.USD(cents * 10_000)
	}
	usd, err := fb.MulDiv(int64(credits), int64(p.d.Payments.USDPerCredit()), fb.Micro)
	if err != nil {
		return 0
	}
	return fb.USD(usd)
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// origin is the dashboard's own origin as the browser reached it: where
// the payment page sends the customer back.
func origin(r *ui.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// checkout opens a Checkout Session for the form's credits and sends the
// browser to it.
func (p *pages) checkout(r *ui.Request) (*ui.View, error) {
	credits, err := fb.ParseAmount(strings.TrimSpace(r.PostFormValue("credits")))
	if err != nil || credits <= 0 || credits > fb.MaxTotal {
		return nil, fb.Invalid("credits", "credits must be a positive amount, such as 1000")
	}
	back := origin(r) + TopUpPath
	sess, err := p.d.Payments.Checkout(r.Context(), r.Session.Customer, credits, back+"?checkout=done", back+"?checkout=cancelled")
	if err != nil {
		return nil, err
	}
	return &ui.View{Title: "Continue to payment", Redirect: sess.URL}, nil
}

func (p *pages) mayChange(r *ui.Request) error {
	ks, err := p.d.Store.Keys(r.Context(), r.Session.Customer)
	if err != nil {
		return err
	}
	if ui.Limited(r, ks) {
		return ui.ErrLimited
	}
	return nil
}

// setAuto turns on or changes the automatic top-up, with the rules of PUT
// /api/v1/customers/{id}/auto-topup.
func (p *pages) setAuto(r *ui.Request) (*ui.View, error) {
	if err := p.mayChange(r); err != nil {
		return nil, err
	}
	t := fb.AutoTopup{Customer: r.Session.Customer}
	var err error
	if t.Threshold, err = fb.ParseAmount(strings.TrimSpace(r.PostFormValue("threshold"))); err != nil {
		return nil, fb.Invalid("threshold", "threshold must be a positive amount of credits, such as 100")
	}
	if t.Credits, err = fb.ParseAmount(strings.TrimSpace(r.PostFormValue("credits"))); err != nil {
		return nil, fb.Invalid("credits", "credits must be a positive amount of credits, such as 1000")
	}
	if t.Cooldown, err = payments.ParseCooldown(strings.TrimSpace(r.PostFormValue("cooldown"))); err != nil {
		return nil, err
	}
	if t, err = p.d.Payments.SetAutoTopup(r.Context(), t); err != nil {
		return nil, err
	}
	return &ui.View{Redirect: TopUpPath, Flash: fmt.Sprintf("Automatic top-up on: %s credits whenever the balance falls below %s.", ui.Credits(t.Credits), ui.Credits(t.Threshold))}, nil
}

func (p *pages) autoOff(r *ui.Request) (*ui.View, error) {
	if err := p.mayChange(r); err != nil {
		return nil, err
	}
	if err := p.d.Store.DeleteAutoTopup(r.Context(), r.Session.Customer); err != nil && fb.ErrorType(err) != fb.ENotFound {
		return nil, err
	}
	return &ui.View{Redirect: TopUpPath, Flash: "Automatic top-ups are off."}, nil
}

// The operator's webhooks.

// deliveriesShown is how many deliveries an endpoint's page lists: the
// API's GET …/deliveries answers the same latest 100.
const deliveriesShown = 100

func (p *pages) webhooks(r *ui.Request) (*ui.View, error) {
	return p.webhooksView(r, nil)
}

// webhooksView lists the endpoints with their latest deliveries' states,
// and the form that adds one; created, when set, is the endpoint just
// made, whose secret is shown this once.
func (p *pages) webhooksView(r *ui.Request, created *fb.WebhookEndpoint) (*ui.View, error) {
	ctx := r.Context()
	eps, err := p.d.Store.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	var secs []ui.Section
	if created != nil {
		secs = append(secs, ui.Secret{Title: "Signing secret of " + created.URL, Value: created.Secret,
			Note: "Copy it now: it is shown this once. Each delivery's Farebox-Signature header is t=<unix time>,v1=<hex HMAC-SHA256 of \"<t>.<body>\"> keyed with it."})
	}
	t := ui.Table{Title: "Endpoints", Empty: "No endpoints yet: add one below.",
		Columns: []ui.Column{{Label: "URL"}, {Label: "Events"}, {Label: "Added"}, {Label: "Delivered", Num: true}, {Label: "Pending", Num: true},
			{Label: "Failed", Num: true}, {Label: ""}}}
	for _, ep := range eps {
		ds, err := p.d.Store.Deliveries(ctx, ep.ID, deliveriesShown)
		if err != nil {
			return nil, err
		}
		n := map[string]int{}
		for _, d := range ds {
			n[d.Status]++
		}
		count := func(s string) ui.Cell { return ui.Cell{Text: ui.Count(int64(n[s])), Sort: fmt.Sprint(n[s])} }
		t.Rows = append(t.Rows, []ui.Cell{{Text: ep.URL, Href: WebhooksPath + "/" + url.PathEscape(ep.ID)}, {Text: strings.Join(ep.Events, ", ")},
			{Text: ui.Day(ep.CreatedAt)}, count(fb.DeliverySucceeded), count(fb.DeliveryPending), count(fb.DeliveryFailed),
			{Text: "Remove", Action: WebhooksPath + "/" + url.PathEscape(ep.ID) + "/delete", Danger: true}})
	}
	secs = append(secs, t,
		ui.Note("Counts are of each endpoint's latest 100 deliveries. Every event is signed, sent within seconds of the commit it comes from, in order per customer, and retried with back-off for 3 days."),
		ui.Form{Title: "Add an endpoint", Action: WebhooksPath, Submit: "Add endpoint", Fields: []ui.Field{
			{Name: "url", Label: "URL", Placeholder: "https://example.com/farebox", Required: true},
			{Name: "events", Label: "Events", Type: "checkboxes", Options: append(slices.Clone(notify.Types), "*")},
		}},
		ui.Note("* takes every event type, those added later too."),
	)
	return &ui.View{Title: "Webhooks", Sections: secs}, nil
}

func (p *pages) createEndpoint(r *ui.Request) (*ui.View, error) {
	ep, err := p.d.Notify.CreateEndpoint(r.Context(), strings.TrimSpace(r.PostFormValue("url")), r.PostForm["events"])
	if err != nil {
		return nil, err
	}
	v, err := p.webhooksView(r, &ep)
	if err != nil {
		return nil, err
	}
	v.Flash = "Endpoint added: events go to " + ep.URL + " from now on."
	return v, nil
}

// endpoint lists an endpoint's latest deliveries, as GET
// /api/v1/webhook-endpoints/{id}/deliveries answers them, each with a
// button that makes it due again.
func (p *pages) endpoint(r *ui.Request) (*ui.View, error) {
	ctx := r.Context()
	ep, err := p.d.Store.Endpoint(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	ds, err := p.d.Store.Deliveries(ctx, ep.ID, deliveriesShown)
	if err != nil {
		return nil, err
	}
	t := ui.Table{Title: "Deliveries, newest first", Empty: "Nothing delivered yet.",
		Columns: []ui.Column{{Label: "Event", Wrap: true}, {Label: "Type"}, {Label: "Customer"}, {Label: "Status"}, {Label: "Attempts", Num: true},
			{Label: "Last answer", Wrap: true}, {Label: "When"}, {Label: ""}}}
	for _, d := range ds {
		retry := "Retry"
		if d.Status == fb.DeliverySucceeded {
			retry = "Send again"
		}
		t.Rows = append(t.Rows, []ui.Cell{{Text: d.Event}, {Text: d.Type}, {Text: d.Customer}, {Text: d.Status},
			{Text: fmt.Sprint(d.Attempts), Sort: fmt.Sprint(d.Attempts)}, {Text: lastAnswer(d), Sort: fmt.Sprint(d.LastStatus)}, when(d),
			{Text: retry, Action: WebhooksPath + "/" + url.PathEscape(ep.ID) + "/deliveries/" + url.PathEscape(d.ID) + "/retry"}})
	}
	return &ui.View{Title: "Webhook endpoint " + ep.URL, Sections: []ui.Section{
		ui.Note(fmt.Sprintf("Takes %s. Added %s as %s.", strings.Join(ep.Events, ", "), ui.Day(ep.CreatedAt), ep.ID)),
		t,
		ui.Note("A retry makes the delivery due now: it goes out within seconds, after the earlier undelivered events of its customer."),
	}}, nil
}

// lastAnswer is what the endpoint last answered a delivery: its HTTP
// status (the API's last_status_code), else why no answer came (its
// last_error), "—" before the first attempt.
func lastAnswer(d fb.WebhookDelivery) string {
	switch {
	case d.LastStatus != 0:
		return fmt.Sprintf("HTTP %d", d.LastStatus)
	case d.LastError != "":
		return d.LastError
	}
	return "—"
}

// when is a delivery's time that matters: when it was delivered, when it
// is tried next, or when it was given up.
func when(d fb.WebhookDelivery) ui.Cell {
	switch {
	case d.Status == fb.DeliverySucceeded:
		return ui.Cell{Text: "delivered " + ui.Stamp(d.DeliveredAt), Sort: fmt.Sprint(d.DeliveredAt.UnixNano())}
	case d.Status == fb.DeliveryPending:
		return ui.Cell{Text: "next " + ui.Stamp(d.NextAt), Sort: fmt.Sprint(d.NextAt.UnixNano())}
	}
	return ui.Cell{Text: "given up (created " + ui.Stamp(d.CreatedAt) + ")", Sort: fmt.Sprint(d.CreatedAt.UnixNano())}
}

func (p *pages) deleteEndpoint(r *ui.Request) (*ui.View, error) {
	ep, err := p.d.Store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := p.d.Store.DeleteEndpoint(r.Context(), ep.ID); err != nil {
		return nil, err
	}
	return &ui.View{Redirect: WebhooksPath, Flash: "Endpoint " + ep.URL + " removed; its pending deliveries are dropped."}, nil
}

// retry makes one of the endpoint's deliveries due now, as POST
// /api/v1/webhook-deliveries/{id}/retry does.
func (p *pages) retry(r *ui.Request) (*ui.View, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	d, _, err := p.d.Store.Delivery(ctx, r.PathValue("delivery"))
	if err != nil {
		return nil, err
	}
	if d.Endpoint != id {
		return nil, fb.Errorf(fb.ENotFound, "endpoint %s has no delivery %s", id, d.ID)
	}
	if _, err := p.d.Notify.Retry(ctx, d.ID); err != nil {
		return nil, err
	}
	return &ui.View{Redirect: WebhooksPath + "/" + url.PathEscape(id), Flash: fmt.Sprintf("%s of %s is due again: it goes out within seconds.", d.Type, d.Customer)}, nil
}
