package postgres_test

import (
	"context"
	"testing"

	fb "farebox"
	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
	"farebox/store/storetest"
)

func TestContract(t *testing.T) {
	pg := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) fb.Store {
		s, err := postgres.Open(context.Background(), pg.NewDatabase(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
