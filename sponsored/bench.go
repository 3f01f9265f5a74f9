package sponsored

import (
	"fmt"
	"strings"

	fb "farebox"
)

// BenchPrompts are the prompts `farebox bench sponsored` and the package's
// benchmark decide on: decision moments and other requests of every kind,
// short and long, in the three languages.
func BenchPrompts() []string {
	long := strings.Repeat("Here is the report I wrote about our quarterly results, please keep the structure. ", 40)
	return []string{
		"Which laptop should I buy for university?",
		"Explain TCP slow start.",
		"Welke koptelefoon met noise cancelling raad je aan onder de 200 euro?",
		"Skriv et dikt om høsten.",
		"Hvilken elbil bør jeg kjøpe for rundt 400 000 kroner, og hvor får jeg best pris?",
		"Write a Python function that parses a CSV file and returns the rows as dictionaries, skipping the header line.",
		"Kun je een hotel in Lissabon aanraden dicht bij het centrum?",
		"Summarise this: " + long,
		long + " Which of these two laptops should I buy, the ThinkPad or the MacBook?",
		"hi",
	}
}

// BenchCampaigns are n campaigns for a benchmark: the realistic ones of
// the tests' kind, and more of made-up products, each with a few phrases.
func BenchCampaigns(n int) []fb.Campaign { return benchCampaigns(n) }

func benchCampaigns(n int) []fb.Campaign {
	words := []string{"laptop", "phone", "hotel", "flight", "insurance", "mortgage", "vacuum", "coffee", "bike", "camera", "tv", "vpn",
		"koptelefoon", "stofzuiger", "hypotheek", "fiets", "hodetelefoner", "støvsuger", "boliglån", "sykkel", "elbil", "kaffemaskin"}
	out := make([]fb.Campaign, 0, n)
	for i := range n {
		w := words[i%len(words)]
		out = append(out, fb.Campaign{ID: fmt.Sprintf("c%04d", i), Advertiser: "shop", Topics: []string{w},
			Phrases: []string{w, fmt.Sprintf("%s model %d", w, i), fmt.Sprintf("brand%d", i), fmt.Sprintf("product%d %s", i, w)},
			Title:   "Campaign " + w, URL: "https://shop.example/" + w, BidPerImpression: fb.Amount(100_000 + i), BidPerClick: 1_000_000,
			DailyBudget: 1000 * fb.Micro, Active: true})
	}
	return out
}
