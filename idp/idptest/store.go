package idptest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// RunStoreTests runs the durable-store suite; newStore returns a fresh,
// migrated store for each subtest.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) idp.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s idp.Store)
	}{
		{"Ping", testPing},
		{"EIDAppClientSeeded", testEIDAppClient},
		{"Clients", testClients},
		{"Citizens", testCitizens},
		{"CitizensAllOrNone", testCitizensAllOrNone},
		{"ListCitizensPaging", testListCitizens},
		{"Guardianships", testGuardianships},
		{"RegistryGuardiansAllOrNone", testRegistryGuardiansAllOrNone},
		{"EndGuardianshipConcurrent", testEndGuardianshipConcurrent},
		{"TimesUTCMillisecond", testTimes},
		{"Activations", testActivations},
		{"UpdateActivationKeepsFailedAttempt", testUpdateActivationError},
		{"UpdateActivationConcurrent", testUpdateActivationConcurrent},
		{"Devices", testDevices},
		{"DevicePlatformLastUsed", testDevicePlatformLastUsed},
		{"TouchDeviceConcurrentWritesOnce", testTouchDeviceConcurrent},
		{"Keys", testKeys},
		{"UpdateKeyConcurrent", testUpdateKeyConcurrent},
		{"ClientPurposes", testClientPurposes},
		{"LegacyGrants", testLegacyGrants},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshTokenFamily", testRefreshTokenFamily},
		{"RevokeDeviceRefreshTokens", testRevokeDeviceRefreshTokens},
		{"RefreshRotationConcurrent", testRefreshRotationConcurrent},
		{"DeleteExpiredRefreshTokens", testDeleteExpiredRefreshTokens},
		{"InitialTokens", testInitialTokens},
		{"RegisterClientConcurrent", testRegisterConcurrent},
		{"UpdateClient", testUpdateClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			withTimeout(subtestTimeout, func() { tt.run(t, s) })
		})
	}
}

func testPing(t *testing.T, s idp.Store) {
	mustNil(t, s.Ping(t.Context()), "ping")
}

func testEIDAppClient(t *testing.T, s idp.Store) {
	c, err := s.GetClient(t.Context(), idp.EIDAppClientID)
	mustNil(t, err, "get eID app client")
	c.CreatedAt = time.Time{} // set by the migration
	equal(t, c, &idp.Client{
		ID:           idp.EIDAppClientID,
		Name:         "OneDoor eID app",
		AuthMethod:   idp.AuthNone,
		RedirectURIs: []string{},
		// Migration 0004: the JWT-bearer grant only, no browser flow.
		GrantTypes: []string{idp.GrantTypeJWTBearer},
		Scopes:     []string{"openid", "profile", "eid", "phone", "address"},
		IDTokenAlg: "ES256",

		PostLogoutRedirectURIs: []string{},
	}, "eID app client")
}

func testClients(t *testing.T, s idp.Store) {
	ctx := t.Context()
	_, err := s.GetClient(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "get missing client")
	mustBe(t, s.DeleteClient(ctx, "missing"), idp.ErrNotFound, "delete missing client")

	c := &idp.Client{
		ID:                     "agency-portal",
		Name:                   "Agency portal",
		SecretHash:             []byte{0, 1, 2, 0xff},
		RedirectURIs:           []string{"https://agency.example/cb", "https://agency.example/cb2"},
		PostLogoutRedirectURIs: []string{"https://agency.example/"},
		GrantTypes:             []string{"authorization_code"},
		Scopes:                 []string{"openid", "profile"},
		Claims:                 []string{"phone_number", "personal_id"},
		AuthMethod:             idp.AuthPrivateKeyJWT,
		JWKS:                   `{"keys":[]}`,
		JWKSURI:                "https://agency.example/jwks",
		PARRequired:            true,
		IDTokenAlg:             "RS256",
		Agency:                 "HN-HOANKIEM",
		Profile:                idp.ProfileFAPI2, // stored as given; Validate is the caller's
		CreatedAt:              base,
	}
	mustNil(t, s.CreateClient(ctx, c), "create client")
	got, err := s.GetClient(ctx, c.ID)
	mustNil(t, err, "get client")
	equal(t, got, c, "client")

	dup := *c
	dup.Name = "Other"
	mustBe(t, s.CreateClient(ctx, &dup), idp.ErrConflict, "create duplicate client")

	// Nil lists and secret come back nil.
	bare := &idp.Client{ID: "bare", Name: "Bare", AuthMethod: idp.AuthNone, CreatedAt: base}
	mustNil(t, s.CreateClient(ctx, bare), "create bare client")
	got, err = s.GetClient(ctx, bare.ID)
	mustNil(t, err, "get bare client")
	equal(t, got, bare, "bare client")

	list, err := s.ListClients(ctx)
	mustNil(t, err, "list clients")
	ids := clientIDs(list)
	for _, id := range []string{c.ID, bare.ID, idp.EIDAppClientID} {
		if !ids[id] {
			t.Errorf("ListClients lacks %q: got %v", id, ids)
		}
	}

	// Deleting a client deletes its refresh-token families (and nobody
	// else's), so registering the id again revives none.
	own, other := refreshToken("sig-of-deleted", "req-of-deleted"), refreshToken("sig-of-other", "req-of-other")
	own.ClientID, other.ClientID = c.ID, bare.ID
	mustNil(t, s.CreateRefreshToken(ctx, own), "create the client's refresh token")
	mustNil(t, s.CreateRefreshToken(ctx, other), "create another client's refresh token")
	mustNil(t, s.DeleteClient(ctx, c.ID), "delete client")
	_, err = s.GetClient(ctx, c.ID)
	mustBe(t, err, idp.ErrNotFound, "get deleted client")
	_, err = s.GetRefreshToken(ctx, own.Signature)
	mustBe(t, err, idp.ErrNotFound, "get a deleted client's refresh token")
	_, err = s.GetRefreshToken(ctx, other.Signature)
	mustNil(t, err, "get another client's refresh token")
	mustBe(t, s.DeleteClient(ctx, c.ID), idp.ErrNotFound, "delete client twice")
	list, err = s.ListClients(ctx)
	mustNil(t, err, "list clients")
	if clientIDs(list)[c.ID] {
		t.Errorf("ListClients still has deleted client %q", c.ID)
	}
}

func clientIDs(cs []*idp.Client) map[string]bool {
	m := map[string]bool{}
	for _, c := range cs {
		m[c.ID] = true
	}
	return m
}

func citizen(n int) *idp.Citizen {
	return &idp.Citizen{
		ID:          fmt.Sprintf("sub-%04d", n),
		PersonalID:  fmt.Sprintf("0790%08d", n),
		FamilyName:  "Nguyễn",
		GivenName:   fmt.Sprintf("Văn %d", n),
		Birthdate:   "1990-05-17",
		Gender:      "male",
		Address:     "12 Lý Thường Kiệt, Hà Nội",
		PhoneNumber: "+84912345678",
		CreatedAt:   base,
	}
}

func testCitizens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	_, err := s.GetCitizen(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "get missing citizen")
	_, err = s.GetCitizenByPersonalID(ctx, "000000000000")
	mustBe(t, err, idp.ErrNotFound, "get missing citizen by personal id")
	mustNil(t, s.CreateCitizens(ctx, nil), "create no citizens")

	cs := []*idp.Citizen{citizen(1), citizen(2), citizen(3)}
	cs[2].PhoneNumber, cs[2].Address = "", ""
	mustNil(t, s.CreateCitizens(ctx, cs), "create citizens")
	for _, c := range cs {
		got, err := s.GetCitizen(ctx, c.ID)
		mustNil(t, err, "get citizen")
		equal(t, got, c, "citizen by id")
		got, err = s.GetCitizenByPersonalID(ctx, c.PersonalID)
		mustNil(t, err, "get citizen by personal id")
		equal(t, got, c, "citizen by personal id")
	}

	dupID := citizen(4)
	dupID.ID = cs[0].ID
	mustBe(t, s.CreateCitizens(ctx, []*idp.Citizen{dupID}), idp.ErrConflict, "create citizen with duplicate id")
	dupPID := citizen(5)
	dupPID.PersonalID = cs[1].PersonalID
	mustBe(t, s.CreateCitizens(ctx, []*idp.Citizen{dupPID}), idp.ErrConflict, "create citizen with duplicate personal id")
}

func testCitizensAllOrNone(t *testing.T, s idp.Store) {
	ctx := t.Context()
	c1 := citizen(1)
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{c1}), "create citizen")

	clash := citizen(9)
	clash.PersonalID = c1.PersonalID
	samePID := citizen(6)
	samePID.ID = "sub-other"
	sameID := citizen(8)
	sameID.PersonalID = "079099999999"
	batches := []struct {
		name  string
		batch []*idp.Citizen
	}{
		{"personal id already stored", []*idp.Citizen{citizen(2), citizen(3), clash}},
		{"personal id twice in batch", []*idp.Citizen{citizen(4), citizen(6), samePID}},
		{"id twice in batch", []*idp.Citizen{citizen(7), citizen(8), sameID}},
	}
	for _, b := range batches {
		mustBe(t, s.CreateCitizens(ctx, b.batch), idp.ErrConflict, b.name)
		for _, c := range b.batch {
			if c.ID == c1.ID {
				continue
			}
			_, err := s.GetCitizen(ctx, c.ID)
			mustBe(t, err, idp.ErrNotFound, b.name+": citizen "+c.ID+" of failed batch")
		}
	}
	list, err := s.ListCitizens(ctx, idp.CitizenFilter{})
	mustNil(t, err, "list citizens")
	equal(t, list, []*idp.Citizen{c1}, "citizens after failed batches")
}

func testListCitizens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	list, err := s.ListCitizens(ctx, idp.CitizenFilter{})
	mustNil(t, err, "list no citizens")
	if len(list) != 0 {
		t.Fatalf("ListCitizens on an empty store: got %d, want 0", len(list))
	}
	var sorted []*idp.Citizen
	for n := 1; n <= 5; n++ {
		sorted = append(sorted, citizen(n))
	}
	// Insert out of order: the list must come back by personal ID.
	batch := []*idp.Citizen{sorted[3], sorted[0], sorted[4], sorted[2], sorted[1]}
	mustNil(t, s.CreateCitizens(ctx, batch), "create citizens")

	tests := []struct {
		f    idp.CitizenFilter
		want []*idp.Citizen
	}{
		{idp.CitizenFilter{}, sorted},
		{idp.CitizenFilter{Limit: 2}, sorted[:2]},
		{idp.CitizenFilter{Offset: 2, Limit: 2}, sorted[2:4]},
		{idp.CitizenFilter{Offset: 4}, sorted[4:]},
		{idp.CitizenFilter{Offset: 3, Limit: 10}, sorted[3:]},
	}
	for _, tt := range tests {
		got, err := s.ListCitizens(ctx, tt.f)
		mustNil(t, err, "list citizens")
		equal(t, got, tt.want, fmt.Sprintf("ListCitizens(%+v)", tt.f))
	}
	got, err := s.ListCitizens(ctx, idp.CitizenFilter{Offset: 10})
	mustNil(t, err, "list citizens past the end")
	if len(got) != 0 {
		t.Errorf("ListCitizens past the end: got %d, want 0", len(got))
	}
}

// testTimes checks Dex's time semantics: any zone in, UTC out, to the ms.
func testTimes(t *testing.T, s idp.Store) {
	ctx := t.Context()
	ict := time.FixedZone("ICT", 7*60*60)
	in := time.Date(2025, 3, 1, 17, 4, 5, 123_456_789, ict)
	want := time.Date(2025, 3, 1, 10, 4, 5, 123_000_000, time.UTC)
	check := func(what string, got time.Time) {
		t.Helper()
		if got.Location() != time.UTC || !got.Equal(want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}

	c := citizen(1)
	c.CreatedAt = in
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{c}), "create citizen")
	gc, err := s.GetCitizen(ctx, c.ID)
	mustNil(t, err, "get citizen")
	check("citizen CreatedAt", gc.CreatedAt)

	mustNil(t, s.CreateDevice(ctx, &idp.Device{ID: "d1", CitizenID: c.ID, Level: idp.LevelHigh, CreatedAt: in}), "create device")
	mustNil(t, s.RevokeDevice(ctx, "d1", in), "revoke device")
	d, err := s.GetDevice(ctx, "d1")
	mustNil(t, err, "get device")
	check("device CreatedAt", d.CreatedAt)
	check("device RevokedAt", *d.RevokedAt)

	mustNil(t, s.PutActivation(ctx, &idp.Activation{CitizenID: c.ID, CodeHash: []byte{1}, Level: idp.LevelHigh,
		ExpiresAt: in, UsedAt: &in, CreatedAt: in}), "put activation")
	a, err := s.GetActivation(ctx, c.ID)
	mustNil(t, err, "get activation")
	check("activation ExpiresAt", a.ExpiresAt)
	check("activation UsedAt", *a.UsedAt)

	mustNil(t, s.CreateRefreshToken(ctx, &idp.RefreshToken{Signature: "r1", RequestID: "q", Active: true,
		ExpiresAt: in, CreatedAt: in, Request: []byte("{}")}), "create refresh token")
	mustNil(t, s.RotateRefreshToken(ctx, &idp.RefreshRotation{RequestID: "q", Redeemed: "r1", Signature: "r2",
		At: in, GraceFrom: in, ExpiresAt: in, Request: []byte("{}")}), "rotate refresh token")
	r, err := s.GetRefreshToken(ctx, "r1")
	mustNil(t, err, "get refresh token")
	check("refresh token ExpiresAt", r.ExpiresAt)
	check("refresh token RotatedAt", *r.RotatedAt)
}

func activation(citizenID string) *idp.Activation {
	return &idp.Activation{
		CitizenID: citizenID,
		CodeHash:  []byte("hash-1"),
		Level:     idp.LevelSubstantial,
		ExpiresAt: at(24 * time.Hour),
		CreatedAt: base,
	}
}

func testActivations(t *testing.T, s idp.Store) {
	ctx := t.Context()
	_, err := s.GetActivation(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "get missing activation")
	called := false
	err = s.UpdateActivation(ctx, "missing", func(*idp.Activation) error { called = true; return nil })
	mustBe(t, err, idp.ErrNotFound, "update missing activation")
	if called {
		t.Error("UpdateActivation called fn for a missing activation")
	}

	a := activation("sub-1")
	mustNil(t, s.PutActivation(ctx, a), "put activation")
	got, err := s.GetActivation(ctx, a.CitizenID)
	mustNil(t, err, "get activation")
	equal(t, got, a, "activation")

	// A new activation replaces the previous one.
	b := activation("sub-1")
	b.CodeHash, b.Level, b.ExpiresAt, b.CreatedAt = []byte("hash-2"), idp.LevelHigh, at(48*time.Hour), at(time.Hour)
	mustNil(t, s.PutActivation(ctx, b), "replace activation")
	got, err = s.GetActivation(ctx, a.CitizenID)
	mustNil(t, err, "get replaced activation")
	equal(t, got, b, "replaced activation")

	used := at(2 * time.Hour)
	err = s.UpdateActivation(ctx, b.CitizenID, func(a *idp.Activation) error {
		equal(t, a, b, "activation passed to fn")
		a.Attempts++
		a.UsedAt = &used
		return nil
	})
	mustNil(t, err, "update activation")
	b.Attempts, b.UsedAt = 1, &used
	got, err = s.GetActivation(ctx, b.CitizenID)
	mustNil(t, err, "get updated activation")
	equal(t, got, b, "updated activation")
}

func testUpdateActivationError(t *testing.T, s idp.Store) {
	ctx := t.Context()
	a := activation("sub-1")
	mustNil(t, s.PutActivation(ctx, a), "put activation")
	errWrongCode := errors.New("wrong code")
	for i := 1; i <= 3; i++ {
		err := s.UpdateActivation(ctx, a.CitizenID, func(a *idp.Activation) error {
			a.Attempts++
			return errWrongCode
		})
		if !errors.Is(err, errWrongCode) {
			t.Fatalf("UpdateActivation: got error %v, want fn's error %v", err, errWrongCode)
		}
		got, err := s.GetActivation(ctx, a.CitizenID)
		mustNil(t, err, "get activation")
		if got.Attempts != i {
			t.Fatalf("after %d failed attempts: got Attempts %d, want %d", i, got.Attempts, i)
		}
	}
}

// testUpdateActivationConcurrent checks read-modify-write is serialised:
// concurrent increments must not be lost.
func testUpdateActivationConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	a := activation("sub-1")
	mustNil(t, s.PutActivation(ctx, a), "put activation")
	const n = 20
	errs := runConcurrently(n, func(int) error {
		return s.UpdateActivation(ctx, a.CitizenID, func(a *idp.Activation) error {
			a.Attempts++
			return nil
		})
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent update activation")
	}
	got, err := s.GetActivation(ctx, a.CitizenID)
	mustNil(t, err, "get activation")
	if got.Attempts != n {
		t.Errorf("after %d concurrent increments: got Attempts %d, want %d", n, got.Attempts, n)
	}
}

func testDevices(t *testing.T, s idp.Store) {
	ctx := t.Context()
	_, err := s.GetDevice(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "get missing device")
	mustBe(t, s.RevokeDevice(ctx, "missing", base), idp.ErrNotFound, "revoke missing device")

	d1 := &idp.Device{ID: "dev-1", CitizenID: "sub-a", Name: "Pixel 8", PublicKey: `{"kty":"EC"}`,
		Level: idp.LevelHigh, CreatedAt: base}
	d2 := &idp.Device{ID: "dev-0", CitizenID: "sub-a", Name: "iPhone", PublicKey: `{"kty":"EC","x":"2"}`,
		Level: idp.LevelSubstantial, CreatedAt: at(time.Hour)}
	d3 := &idp.Device{ID: "dev-3", CitizenID: "sub-b", Name: "Galaxy", PublicKey: `{}`,
		Level: idp.LevelHigh, CreatedAt: base}
	for _, d := range []*idp.Device{d1, d2, d3} {
		mustNil(t, s.CreateDevice(ctx, d), "create device")
	}
	dup := *d1
	mustBe(t, s.CreateDevice(ctx, &dup), idp.ErrConflict, "create duplicate device")

	got, err := s.GetDevice(ctx, d1.ID)
	mustNil(t, err, "get device")
	equal(t, got, d1, "device")

	list, err := s.ListDevices(ctx, "sub-a")
	mustNil(t, err, "list devices")
	equal(t, list, []*idp.Device{d1, d2}, "devices of sub-a, oldest first")
	list, err = s.ListDevices(ctx, "sub-none")
	mustNil(t, err, "list devices of a citizen without any")
	if len(list) != 0 {
		t.Errorf("ListDevices(sub-none): got %d devices, want 0", len(list))
	}

	mustNil(t, s.RevokeDevice(ctx, d1.ID, at(time.Minute)), "revoke device")
	mustNil(t, s.RevokeDevice(ctx, d1.ID, at(time.Hour)), "revoke device again")
	got, err = s.GetDevice(ctx, d1.ID)
	mustNil(t, err, "get revoked device")
	d1.RevokedAt = ptr(at(time.Minute))
	equal(t, got, d1, "revoked device keeps the first revocation time")
	got, err = s.GetDevice(ctx, d2.ID)
	mustNil(t, err, "get other device")
	equal(t, got, d2, "other device untouched")
}

// What an app declares at enrollment round-trips; TouchDevice records a
// use at most once per interval, never on a revoked device.
func testDevicePlatformLastUsed(t *testing.T, s idp.Store) {
	ctx := t.Context()
	d := &idp.Device{ID: "dev-p", CitizenID: "sub-a", Name: "Điện thoại của Lan", Platform: "android", Model: "Pixel 9 Pro",
		PublicKey: `{"kty":"EC"}`, Level: idp.LevelHigh, CreatedAt: base}
	old := &idp.Device{ID: "dev-old", CitizenID: "sub-a", Name: "eID app", PublicKey: `{}`, Level: idp.LevelSubstantial, CreatedAt: base}
	mustNil(t, s.CreateDevice(ctx, d), "create device")
	mustNil(t, s.CreateDevice(ctx, old), "create device without platform")
	got, err := s.GetDevice(ctx, d.ID)
	mustNil(t, err, "get device")
	equal(t, got, d, "device with platform and model, never used")

	_, err = s.TouchDevice(ctx, "missing", base, time.Minute)
	mustBe(t, err, idp.ErrNotFound, "touch missing device")
	wrote, err := s.TouchDevice(ctx, d.ID, at(time.Hour), time.Minute)
	mustNil(t, err, "first touch")
	if !wrote {
		t.Error("first touch: wrote nothing")
	}
	wrote, err = s.TouchDevice(ctx, d.ID, at(time.Hour+59*time.Second), time.Minute)
	mustNil(t, err, "touch within the interval")
	if wrote {
		t.Error("touch within the interval wrote")
	}
	got, err = s.GetDevice(ctx, d.ID)
	mustNil(t, err, "get touched device")
	d.LastUsedAt = ptr(at(time.Hour))
	equal(t, got, d, "device after touches within one interval")
	wrote, err = s.TouchDevice(ctx, d.ID, at(time.Hour+time.Minute), time.Minute)
	mustNil(t, err, "touch after the interval")
	if !wrote {
		t.Error("touch after the interval wrote nothing")
	}
	list, err := s.ListDevices(ctx, "sub-a")
	mustNil(t, err, "list devices")
	d.LastUsedAt = ptr(at(time.Hour + time.Minute))
	equal(t, list, []*idp.Device{old, d}, "listed devices carry platform and last use")

	// A revoked device records no use: nothing it does counts any more.
	mustNil(t, s.RevokeDevice(ctx, old.ID, at(2*time.Hour)), "revoke")
	wrote, err = s.TouchDevice(ctx, old.ID, at(3*time.Hour), time.Minute)
	mustNil(t, err, "touch revoked device")
	if wrote {
		t.Error("touch of a revoked device wrote")
	}
	got, err = s.GetDevice(ctx, old.ID)
	mustNil(t, err, "get revoked device")
	if got.LastUsedAt != nil {
		t.Errorf("revoked device: got LastUsedAt %v, want nil", got.LastUsedAt)
	}
}

// Concurrent approvals from one device (two replicas) write its last use
// once per interval.
func testTouchDeviceConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	d := &idp.Device{ID: "dev-c", CitizenID: "sub-a", Name: "eID app", PublicKey: `{}`, Level: idp.LevelHigh, CreatedAt: base}
	mustNil(t, s.CreateDevice(ctx, d), "create device")
	var wrote atomic.Int32
	errs := runConcurrently(10, func(int) error {
		ok, err := s.TouchDevice(ctx, d.ID, at(time.Hour), time.Minute)
		if ok {
			wrote.Add(1)
		}
		return err
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent touch")
	}
	if n := wrote.Load(); n != 1 {
		t.Errorf("10 concurrent touches wrote %d times, want 1", n)
	}
}

func testKeys(t *testing.T, s idp.Store) {
	ctx := t.Context()
	ks, err := s.ListKeys(ctx)
	mustNil(t, err, "list no keys")
	if len(ks) != 0 {
		t.Fatalf("ListKeys on an empty store: got %d, want 0", len(ks))
	}
	err = s.UpdateKey(ctx, "missing", func(*idp.SigningKey) error { return nil })
	mustBe(t, err, idp.ErrNotFound, "update missing key")

	k1 := &idp.SigningKey{ID: "kid-1", Alg: "ES256", State: idp.KeyActive, Private: []byte{0x30, 0x81, 0},
		Public: `{"kid":"kid-1"}`, CreatedAt: base, ActivatedAt: ptr(base)}
	k2 := &idp.SigningKey{ID: "kid-0", Alg: "RS256", State: idp.KeyNext, Private: []byte{0x30, 0x82},
		Public: `{"kid":"kid-0"}`, CreatedAt: at(time.Hour)}
	mustNil(t, s.CreateKey(ctx, k1), "create key")
	mustNil(t, s.CreateKey(ctx, k2), "create key")
	dup := *k1
	mustBe(t, s.CreateKey(ctx, &dup), idp.ErrConflict, "create duplicate key")
	ks, err = s.ListKeys(ctx)
	mustNil(t, err, "list keys")
	equal(t, ks, []*idp.SigningKey{k1, k2}, "keys, oldest first")

	// Rotate: k2 becomes active, k1 retires.
	mustNil(t, s.UpdateKey(ctx, k2.ID, func(k *idp.SigningKey) error {
		equal(t, k, k2, "key passed to fn")
		k.State, k.ActivatedAt = idp.KeyActive, ptr(at(2*time.Hour))
		return nil
	}), "activate key")
	mustNil(t, s.UpdateKey(ctx, k1.ID, func(k *idp.SigningKey) error {
		k.State, k.RetiredAt, k.PublishUntil = idp.KeyRetired, ptr(at(2*time.Hour)), ptr(at(26*time.Hour))
		return nil
	}), "retire key")
	k2.State, k2.ActivatedAt = idp.KeyActive, ptr(at(2*time.Hour))
	k1.State, k1.RetiredAt, k1.PublishUntil = idp.KeyRetired, ptr(at(2*time.Hour)), ptr(at(26*time.Hour))

	// A failing fn saves nothing and its error comes back.
	errNo := errors.New("no")
	err = s.UpdateKey(ctx, k1.ID, func(k *idp.SigningKey) error {
		k.State = idp.KeyNext
		return errNo
	})
	if !errors.Is(err, errNo) {
		t.Errorf("UpdateKey with failing fn: got error %v, want %v", err, errNo)
	}

	ks, err = s.ListKeys(ctx)
	mustNil(t, err, "list keys")
	equal(t, ks, []*idp.SigningKey{k1, k2}, "keys after rotation")
}

func testUpdateKeyConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	mustNil(t, s.CreateKey(ctx, &idp.SigningKey{ID: "kid", Alg: "ES256", State: idp.KeyNext,
		Private: []byte{1}, Public: "", CreatedAt: base}), "create key")
	const n = 20
	errs := runConcurrently(n, func(int) error {
		return s.UpdateKey(ctx, "kid", func(k *idp.SigningKey) error {
			k.Public += "x"
			return nil
		})
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent update key")
	}
	ks, err := s.ListKeys(ctx)
	mustNil(t, err, "list keys")
	if len(ks) != 1 {
		t.Fatalf("ListKeys: got %d keys, want 1", len(ks))
	}
	if len(ks[0].Public) != n {
		t.Errorf("after %d concurrent appends: got Public %q, want %d characters", n, ks[0].Public, n)
	}
}

func testClientPurposes(t *testing.T, s idp.Store) {
	ctx := t.Context()
	c := &idp.Client{ID: "with-purposes", Name: "P", AuthMethod: idp.AuthNone, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://p.example/cb"}, Scopes: []string{"openid"}, IDTokenAlg: "ES256", CreatedAt: base,
		Purposes: []consent.Purpose{{Code: "tax", Text: "Khai thuế / Tax return"}, {Code: "benefit", Text: "Trợ cấp"}}}
	mustNil(t, s.CreateClient(ctx, c), "create client")
	got, err := s.GetClient(ctx, c.ID)
	mustNil(t, err, "get client")
	equal(t, got.Purposes, c.Purposes, "purposes, in registration order")
}

// testLegacyGrants: the former grant table is only read and emptied.
func testLegacyGrants(t *testing.T, s idp.Store) {
	ctx := t.Context()
	gs, err := s.LegacyGrants(ctx, 10)
	mustNil(t, err, "legacy grants")
	if len(gs) != 0 {
		t.Errorf("a fresh store has %d legacy grants", len(gs))
	}
	mustNil(t, s.DeleteLegacyGrant(ctx, "sub-1", "client-a"), "delete an absent legacy grant")
}

func refreshToken(sig, requestID string) *idp.RefreshToken {
	return &idp.RefreshToken{
		Signature: sig,
		RequestID: requestID,
		ClientID:  "client-a",
		Subject:   "sub-1",
		Active:    true,
		ExpiresAt: at(30 * 24 * time.Hour),
		CreatedAt: base,
		Request:   []byte(`{"scopes":["openid","offline_access"]}`),
	}
}

// rotation redeems the token redeemed of family q for a child at time when,
// with a 30 s grace window.
func rotation(q, redeemed, child string, when time.Time) *idp.RefreshRotation {
	return &idp.RefreshRotation{RequestID: q, Redeemed: redeemed, Signature: child, At: when,
		GraceFrom: when.Add(-30 * time.Second), ExpiresAt: when.Add(30 * 24 * time.Hour),
		Request: []byte(`{"child":"` + child + `"}`)}
}

func testRefreshTokens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	_, err := s.GetRefreshToken(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "get missing refresh token")
	mustBe(t, s.RotateRefreshToken(ctx, rotation("req-none", "missing", "x", base)), idp.ErrNotFound, "rotate missing family")
	mustBe(t, s.DeleteRefreshToken(ctx, "req-none"), idp.ErrNotFound, "delete missing family")

	r := refreshToken("sig-1", "req-1")
	r.DeviceID = "device-1"
	mustNil(t, s.CreateRefreshToken(ctx, r), "create refresh token")
	dup := *r
	mustBe(t, s.CreateRefreshToken(ctx, &dup), idp.ErrConflict, "create duplicate family")
	dup.Signature = "sig-other"
	mustBe(t, s.CreateRefreshToken(ctx, &dup), idp.ErrConflict, "create a second row for one family")
	got, err := s.GetRefreshToken(ctx, r.Signature)
	mustNil(t, err, "get refresh token")
	equal(t, got, r, "refresh token")

	// Rotation updates the family in place: the redeemed token becomes the
	// previous one, both read back the same family.
	mustNil(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-1", "sig-2", at(time.Minute))), "rotate")
	want := *r
	want.Signature, want.PreviousSignature, want.RotatedAt = "sig-2", "sig-1", ptr(at(time.Minute))
	want.ExpiresAt, want.Request = at(time.Minute+30*24*time.Hour), []byte(`{"child":"sig-2"}`)
	for _, sig := range []string{"sig-1", "sig-2"} {
		got, err = s.GetRefreshToken(ctx, sig)
		mustNil(t, err, "get rotated family by "+sig)
		equal(t, got, &want, "rotated family by "+sig)
	}

	// Redeeming the previous token again within the grace window replaces
	// the child; the rotation time is kept, so the window does not stretch.
	mustNil(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-1", "sig-3", at(time.Minute+10*time.Second))), "rotate previous within grace")
	_, err = s.GetRefreshToken(ctx, "sig-2")
	mustBe(t, err, idp.ErrNotFound, "the first child after the previous token was redeemed again")
	got, err = s.GetRefreshToken(ctx, "sig-3")
	mustNil(t, err, "get second child")
	equal(t, got.PreviousSignature, "sig-1", "previous after a grace redemption")
	equal(t, *got.RotatedAt, at(time.Minute), "rotation time after a grace redemption")

	// After the window, and for any token that is neither current nor
	// previous, the compare-and-set refuses.
	mustBe(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-1", "sig-4", at(time.Minute+31*time.Second))), idp.ErrNotFound, "rotate previous after grace")
	mustBe(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-2", "sig-4", at(time.Minute+11*time.Second))), idp.ErrNotFound, "rotate a dead child")
	mustBe(t, s.RotateRefreshToken(ctx, rotation("req-2", "sig-3", "sig-4", at(time.Minute+11*time.Second))), idp.ErrNotFound, "rotate under another family")

	// The current token rotates; the grace window starts again.
	mustNil(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-3", "sig-4", at(2*time.Minute))), "rotate current")
	_, err = s.GetRefreshToken(ctx, "sig-1")
	mustBe(t, err, idp.ErrNotFound, "grandparent after two rotations")

	mustNil(t, s.DeleteRefreshToken(ctx, "req-1"), "delete family")
	_, err = s.GetRefreshToken(ctx, "sig-4")
	mustBe(t, err, idp.ErrNotFound, "get deleted family")
}

func testRefreshTokenFamily(t *testing.T, s idp.Store) {
	ctx := t.Context()
	r1, other := refreshToken("sig-1", "req-1"), refreshToken("sig-3", "req-2")
	for _, r := range []*idp.RefreshToken{r1, other} {
		mustNil(t, s.CreateRefreshToken(ctx, r), "create refresh token")
	}
	mustNil(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-1", "sig-2", at(time.Minute))), "rotate refresh token")
	mustNil(t, s.RevokeRefreshTokens(ctx, "req-1"), "revoke family")
	mustNil(t, s.RevokeRefreshTokens(ctx, "req-none"), "revoke absent family")
	for _, sig := range []string{"sig-1", "sig-2"} {
		got, err := s.GetRefreshToken(ctx, sig)
		mustNil(t, err, "get refresh token after revocation")
		equal(t, got.Active, false, "revoked family by "+sig)
	}
	got, err := s.GetRefreshToken(ctx, "sig-3")
	mustNil(t, err, "get other family")
	equal(t, got, other, "another family after revocation")
	// A revoked family does not rotate, and a revoked family stays revoked.
	mustBe(t, s.RotateRefreshToken(ctx, rotation("req-1", "sig-2", "sig-5", at(2*time.Minute))), idp.ErrNotFound, "rotate revoked family")
}

// testRevokeDeviceRefreshTokens: a stolen phone is revoked; every family it
// approved or holds stops, other devices' and device-less families do not.
func testRevokeDeviceRefreshTokens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	a1, a2, b, none := refreshToken("a1", "q-a1"), refreshToken("a2", "q-a2"), refreshToken("b", "q-b"), refreshToken("n", "q-n")
	a1.DeviceID, a2.DeviceID, b.DeviceID = "phone-a", "phone-a", "phone-b"
	for _, r := range []*idp.RefreshToken{a1, a2, b, none} {
		mustNil(t, s.CreateRefreshToken(ctx, r), "create refresh token")
	}
	mustNil(t, s.RotateRefreshToken(ctx, rotation("q-a2", "a2", "a2-child", at(time.Minute))), "rotate")
	mustNil(t, s.RevokeDeviceRefreshTokens(ctx, "phone-a"), "revoke device")
	mustNil(t, s.RevokeDeviceRefreshTokens(ctx, "phone-unknown"), "revoke unknown device")
	mustNil(t, s.RevokeDeviceRefreshTokens(ctx, ""), "revoke the empty device id")
	for sig, active := range map[string]bool{"a1": false, "a2": false, "a2-child": false, "b": true, "n": true} {
		got, err := s.GetRefreshToken(ctx, sig)
		mustNil(t, err, "get "+sig)
		equal(t, got.Active, active, "active "+sig)
	}
	mustBe(t, s.RotateRefreshToken(ctx, rotation("q-a1", "a1", "a1-child", at(time.Minute))), idp.ErrNotFound, "rotate a revoked device's family")
}

// testRefreshRotationConcurrent: many replicas redeem one token, or its
// parent, at once. Afterwards exactly one child is live: the family row
// names one current token, and every other child signature is unknown.
func testRefreshRotationConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	mustNil(t, s.CreateRefreshToken(ctx, refreshToken("p", "q")), "create")
	const n = 16
	errs := runConcurrently(n, func(i int) error {
		return s.RotateRefreshToken(ctx, rotation("q", "p", fmt.Sprintf("child-%d", i), at(time.Second)))
	})
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("concurrent rotation: %v", err)
		}
	}
	if wins == 0 {
		t.Fatal("no concurrent rotation succeeded")
	}
	live := 0
	for i := range n {
		if got, err := s.GetRefreshToken(ctx, fmt.Sprintf("child-%d", i)); err == nil {
			live++
			equal(t, got.PreviousSignature, "p", "previous of the live child")
		}
	}
	if live != 1 {
		t.Fatalf("%d live children after %d concurrent redemptions, want 1", live, n)
	}
}

func testDeleteExpiredRefreshTokens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	expired, atNow, live := refreshToken("expired", "q1"), refreshToken("at-now", "q2"), refreshToken("live", "q3")
	expired.ExpiresAt, atNow.ExpiresAt, live.ExpiresAt = at(-time.Millisecond), base, at(time.Hour)
	for _, r := range []*idp.RefreshToken{expired, atNow, live} {
		mustNil(t, s.CreateRefreshToken(ctx, r), "create refresh token")
	}
	n, err := s.DeleteExpiredRefreshTokens(ctx, base)
	mustNil(t, err, "delete expired refresh tokens")
	if n != 1 {
		t.Errorf("DeleteExpiredRefreshTokens: got %d deleted, want 1", n)
	}
	_, err = s.GetRefreshToken(ctx, expired.Signature)
	mustBe(t, err, idp.ErrNotFound, "get expired refresh token")
	for _, r := range []*idp.RefreshToken{atNow, live} {
		_, err := s.GetRefreshToken(ctx, r.Signature)
		mustNil(t, err, "get unexpired refresh token "+r.Signature)
	}
}

// runConcurrently starts n calls of f at once and returns their errors.
func runConcurrently(n int, f func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// guardianshipsOf reads the guardianships in force of a citizen as
// "ward>guardian/source" strings.
func guardianshipsOf(t *testing.T, s idp.Store, id string) []string {
	t.Helper()
	gs, err := s.Guardianships(t.Context(), id)
	mustNil(t, err, "guardianships of "+id)
	out := []string{}
	for _, g := range gs {
		out = append(out, g.WardID+">"+g.GuardianID+"/"+g.Source)
	}
	return out
}

func testGuardianships(t *testing.T, s idp.Store) {
	ctx := t.Context()
	mother, father, stored := citizen(1), citizen(2), citizen(3)
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{stored}), "create a stored guardian")
	child := citizen(4)
	child.Birthdate = "2015-02-03"
	// Guardians from the same batch (listed after the ward) and one
	// already stored; a repeat counts once.
	child.Guardians = []string{mother.PersonalID, father.PersonalID, stored.PersonalID, mother.PersonalID}
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{child, mother, father}), "create a household")
	got, err := s.GetCitizen(ctx, child.ID)
	mustNil(t, err, "get ward")
	if len(got.Guardians) != 0 {
		t.Errorf("reads fill Guardians: %v", got.Guardians)
	}
	equal(t, guardianshipsOf(t, s, child.ID), []string{
		"sub-0004>sub-0001/registry", "sub-0004>sub-0002/registry", "sub-0004>sub-0003/registry"}, "ward's guardianships")
	equal(t, guardianshipsOf(t, s, mother.ID), []string{"sub-0004>sub-0001/registry"}, "guardian's guardianships")
	equal(t, guardianshipsOf(t, s, "nobody"), []string{}, "a stranger's")
	gs, err := s.Guardianships(ctx, child.ID)
	mustNil(t, err, "guardianships")
	if g := gs[0]; g.Until != nil || !g.CreatedAt.Equal(base) {
		t.Errorf("registry guardianship until %v created %v, want none and %v", g.Until, g.CreatedAt, base)
	}

	// A court appoints a guardian until a date, and another without one.
	adult := citizen(5)
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{adult}), "create an adult ward")
	until := base.Add(90 * 24 * time.Hour)
	at := base.Add(time.Hour)
	mustNil(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: mother.ID, Source: represent.GuardianCourt, Until: &until, CreatedAt: at}), "court guardianship")
	mustNil(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: child.ID, GuardianID: stored.ID, Source: represent.GuardianCourt}), "open-ended court guardianship")
	gs, err = s.Guardianships(ctx, adult.ID)
	mustNil(t, err, "guardianships")
	equal(t, gs, []represent.Guardianship{{WardID: adult.ID, GuardianID: mother.ID, Source: represent.GuardianCourt, Until: &until, CreatedAt: at}}, "court guardianship")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: mother.ID, Source: represent.GuardianCourt}), idp.ErrConflict, "the same guardianship twice")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: "nobody", Source: represent.GuardianCourt}), idp.ErrNotFound, "an unknown guardian")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: "nobody", GuardianID: mother.ID, Source: represent.GuardianCourt}), idp.ErrNotFound, "an unknown ward")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: adult.ID, Source: represent.GuardianCourt}), idp.ErrInvalid, "one's own guardian")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: father.ID, Source: "aunt"}), idp.ErrInvalid, "an unknown source")
	mustBe(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: adult.ID, GuardianID: father.ID, Source: represent.GuardianRegistry, Until: &until}), idp.ErrInvalid, "a registry guardianship with an end date")

	// Ending one leaves the others; ending it again finds nothing; it may
	// be appointed anew.
	mustNil(t, s.EndGuardianship(ctx, child.ID, stored.ID, at), "end")
	equal(t, guardianshipsOf(t, s, child.ID), []string{"sub-0004>sub-0001/registry", "sub-0004>sub-0002/registry"}, "after ending both of one guardian")
	mustBe(t, s.EndGuardianship(ctx, child.ID, stored.ID, at), idp.ErrNotFound, "end twice")
	mustBe(t, s.EndGuardianship(ctx, adult.ID, father.ID, at), idp.ErrNotFound, "end what never was")
	mustNil(t, s.AddGuardianship(ctx, represent.Guardianship{WardID: child.ID, GuardianID: stored.ID, Source: represent.GuardianCourt, CreatedAt: at}), "appoint anew")
	equal(t, guardianshipsOf(t, s, stored.ID), []string{"sub-0004>sub-0003/court"}, "appointed anew")
}

func testRegistryGuardiansAllOrNone(t *testing.T, s idp.Store) {
	ctx := t.Context()
	parent := citizen(1)
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{parent}), "create parent")
	self := citizen(2)
	self.Guardians = []string{self.PersonalID}
	unknown := citizen(3)
	unknown.Guardians = []string{parent.PersonalID, "079099999999"}
	for name, batch := range map[string][]*idp.Citizen{
		"own guardian":     {citizen(4), self},
		"unknown guardian": {citizen(5), unknown},
	} {
		mustBe(t, s.CreateCitizens(ctx, batch), idp.ErrInvalid, name)
		for _, c := range batch {
			_, err := s.GetCitizen(ctx, c.ID)
			mustBe(t, err, idp.ErrNotFound, name+": citizen left behind")
		}
	}
	equal(t, guardianshipsOf(t, s, parent.ID), []string{}, "guardianships left behind")
}

func testEndGuardianshipConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	g, w := citizen(1), citizen(2)
	w.Guardians = []string{g.PersonalID}
	mustNil(t, s.CreateCitizens(ctx, []*idp.Citizen{g, w}), "create")
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.EndGuardianship(ctx, w.ID, g.ID, base) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("end: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d ends succeeded, want 1", ok)
	}
}
