package sponsored

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	fb "farebox"
)

var clockStart = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// campaigns are an operator's campaigns in three languages, for the tests
// and the benchmark: they name much of what the non-decision prompts talk
// about, so a suggestion can only be kept off those by the classifier.
func testCampaigns() []fb.Campaign {
	mk := func(id string, bid string, topics, phrases []string) fb.Campaign {
		a, _ := fb.ParseAmount(bid)
		return fb.Campaign{ID: id, Advertiser: "shop", Topics: topics, Phrases: phrases, ExcludeTopics: []string{},
			Title: "Title of " + id, Text: "Text of " + id, URL: "https://shop.example/" + id,
			BidPerImpression: a, BidPerClick: 2 * a, DailyBudget: 1000 * fb.Micro, Active: true}
	}
	return []fb.Campaign{
		mk("laptops", "0.5", []string{"laptops"}, []string{"laptop", "notebook", "macbook", "bærbar pc", "bærbare", "chromebook", "ultrabook", "thinkpad"}),
		mk("phones", "0.4", []string{"phones"}, []string{"phone", "smartphone", "iphone", "telefoon", "mobiel", "mobil", "mobiltelefon", "galaxy", "pixel"}),
		mk("headphones", "0.3", []string{"headphones"}, []string{"headphones", "earbuds", "koptelefoon", "oordopjes", "hodetelefoner", "ørepropper", "øreplugger", "airpods"}),
		mk("hotels", "0.6", []string{"hotels"}, []string{"hotel", "hotell", "resort", "stay in", "overnachten", "verblijven"}),
		mk("flights", "0.6", []string{"flights"}, []string{"flight", "fly", "flytur", "vliegen", "vlucht", "vliegtuig", "flybillett", "vliegticket", "plane tickets", "airline", "airport", "luchthaven", "flyselskap", "luchtvaartmaatschappij"}),
		mk("ev", "0.8", []string{"electric cars"}, []string{"electric car", "ev", "tesla", "volkswagen", "elbil", "elektrische auto", "hybrid", "hybride", "car"}),
		mk("insurance", "0.7", []string{"insurance"}, []string{"insurance", "verzekering", "forsikring", "reiseforsikring", "reisverzekering"}),
		mk("mortgage", "0.9", []string{"mortgages"}, []string{"mortgage", "hypotheek", "boliglån", "fixed rate", "fastrente", "rente", "woning", "bolig", "house"}),
		mk("vacuum", "0.3", []string{"vacuum cleaners"}, []string{"vacuum", "stofzuiger", "støvsuger", "robot vacuum", "robotstøvsuger", "dyson"}),
		mk("coffee", "0.3", []string{"coffee machines"}, []string{"coffee", "koffie", "kaffe", "espresso", "koffiemachine", "kaffemaskin", "nespresso", "koffiezetapparaat", "kaffetrakter"}),
		mk("bikes", "0.3", []string{"bicycles"}, []string{"bike", "e-bike", "fiets", "sykkel", "sykler", "elsykkel", "elsykler", "bakfiets", "bicycle"}),
		mk("streaming", "0.2", []string{"streaming"}, []string{"netflix", "streaming", "disney", "hbo", "viaplay", "videoland", "series", "serie"}),
		mk("vpn", "0.4", []string{"vpn"}, []string{"vpn", "password manager", "wachtwoordmanager", "passordbehandler", "antivirus"}),
		mk("tv", "0.4", []string{"televisions"}, []string{"tv", "oled", "qled", "television", "soundbar", "lydplanke"}),
		mk("energy", "0.5", []string{"energy"}, []string{"energy", "electricity", "energieleverancier", "strøm", "strømavtale", "solar panels", "zonnepanelen", "solcellepaneler", "heat pump", "warmtepomp", "varmepumpe"}),
		mk("banking", "0.6", []string{"banking"}, []string{"bank", "savings", "spaarrekening", "sparekonto", "credit card", "creditcard", "kredittkort", "broker", "etf", "mutual fund", "index funds", "indexfondsen", "indeksfond", "aksjefond"}),
		mk("cameras", "0.3", []string{"cameras"}, []string{"camera", "kamera", "lens", "objektiv", "mirrorless", "megapixels"}),
		mk("kitchen", "0.2", []string{"kitchen"}, []string{"air fryer", "airfryer", "dishwasher", "vaatwasser", "oppvaskmaskin", "kettle", "waterkoker", "vannkoker", "fridge", "koelkast", "kjøleskap"}),
		mk("courses", "0.3", []string{"courses"}, []string{"course", "cursus", "kurs", "bootcamp", "python", "data science", "sql", "node js", "regular expression", "reguliere expressie", "code"}),
		mk("printers", "0.2", []string{"printers"}, []string{"printer", "skriver", "router", "ruter", "wifi"}),
		mk("peripherals", "0.2", []string{"keyboards"}, []string{"keyboard", "mechanical keyboard", "toetsenbord", "tastatur", "mouse", "muis"}),
		mk("sleep", "0.4", []string{"mattresses"}, []string{"mattress", "matras", "madrass", "pillow", "kussen", "pute"}),
		mk("sports", "0.3", []string{"sports"}, []string{"running shoes", "hardloopschoenen", "løpesko", "ski", "skiing", "langrennsski", "smartwatch", "smartklokke", "sporthorloge"}),
		mk("outdoor", "0.3", []string{"camping"}, []string{"camping", "kamperen", "tent", "telt", "sleeping bag", "slaapzak", "sovepose", "hytta", "suitcase", "koffer"}),
	}
}

// memStore keeps campaigns and views in memory, for tests of matching and
// placing without a database.
type memStore struct {
	mu        sync.Mutex
	customers map[string]fb.Customer
	campaigns map[string]fb.Campaign
	views     map[string]int64
}

func newMemStore(cs ...fb.Campaign) *memStore {
	m := &memStore{customers: map[string]fb.Customer{"shop": {ID: "shop", Kind: fb.KindAdvertiser}, "acme": {ID: "acme", Kind: fb.KindCustomer}},
		campaigns: map[string]fb.Campaign{}, views: map[string]int64{}}
	for _, c := range cs {
		c.Version = 1
		m.campaigns[c.ID] = c
	}
	return m
}

func (m *memStore) Customer(_ context.Context, id string) (fb.Customer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.customers[id]
	if !ok {
		return c, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	return c, nil
}

func (m *memStore) CreateCampaign(_ context.Context, c fb.Campaign) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.campaigns[c.ID]; ok {
		return fb.ErrCampaignExists.New("exists")
	}
	c.Version = 1
	m.campaigns[c.ID] = c
	return nil
}

func (m *memStore) Campaign(_ context.Context, id string) (fb.Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.campaigns[id]
	if !ok {
		return c, fb.Errorf(fb.ENotFound, "no campaign %q", id)
	}
	return c, nil
}

func (m *memStore) Campaigns(context.Context) ([]fb.Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []fb.Campaign
	for _, c := range m.campaigns {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b fb.Campaign) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memStore) SwapCampaign(_ context.Context, c fb.Campaign) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.campaigns[c.ID]
	switch {
	case !ok:
		return fb.Errorf(fb.ENotFound, "no campaign")
	case old.Version != c.Version:
		return fb.ErrCampaignChanged.New("changed")
	}
	c.Version++
	m.campaigns[c.ID] = c
	return nil
}

func (m *memStore) DeleteCampaign(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.campaigns[id]; !ok {
		return fb.Errorf(fb.ENotFound, "no campaign")
	}
	delete(m.campaigns, id)
	return nil
}

func (m *memStore) CampaignStats(context.Context, fb.Campaign, time.Time, time.Time) (fb.CampaignStats, error) {
	return fb.CampaignStats{}, nil
}

func (m *memStore) CountView(_ context.Context, campaign, subject string, day time.Time, limit int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := campaign + "|" + subject + "|" + day.Format(time.DateOnly)
	if m.views[k] >= limit {
		return false, nil
	}
	m.views[k]++
	return true, nil
}

func (m *memStore) UncountView(_ context.Context, campaign, subject string, day time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := campaign + "|" + subject + "|" + day.Format(time.DateOnly)
	if m.views[k] > 0 {
		m.views[k]--
	}
	return nil
}

func (m *memStore) PruneViews(context.Context, time.Time) (int64, error) { return 0, nil }

func errorsAs(err error, target **fb.Error) bool { return errors.As(err, target) }
