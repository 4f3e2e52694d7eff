package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

var _ consent.WitnessStore = (*Store)(nil)

// TreeHashes reads stored tree hashes in the order asked.
func (s *Store) TreeHashes(ctx context.Context, indexes []int64) ([][]byte, error) {
	return readHashes(ctx, s.db, "read tree hashes", indexes)
}

// CheckpointAt returns the checkpoint of exactly size.
func (s *Store) CheckpointAt(ctx context.Context, size int64) (*consent.Checkpoint, error) {
	const op = "read checkpoint"
	return scanCheckpoint(op, s.db.QueryRowContext(ctx, `SELECT `+checkpointColumns+` FROM consent_checkpoints WHERE size = $1`, size))
}

// AddCosignature stores a witness's cosignature; the first of a witness
// key and size is kept.
func (s *Store) AddCosignature(ctx context.Context, c *consent.Cosignature) error {
	const op = "add cosignature"
	if c == nil || c.Size < 1 || len(c.Root) == 0 || len(c.Signature) == 0 {
		return invalid(op, "a size, root and signature are required")
	}
	if err := checkText(op, "witness", c.Witness, maxID); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO consent_cosignatures (witness, key_hash, size, root, signature, signed_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (witness, key_hash, size) DO NOTHING`,
		c.Witness, int64(c.KeyHash), c.Size, c.Root, c.Signature, c.SignedAt.Unix(), sqldb.MS(s.clock()))
	return dbErr(op, err)
}

const cosignatureColumns = `witness, key_hash, size, root, signature, signed_at`

func (s *Store) queryCosignatures(ctx context.Context, op, query string, args ...any) ([]*consent.Cosignature, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*consent.Cosignature
	for rows.Next() {
		var (
			c            consent.Cosignature
			hash, signed int64
		)
		if err := rows.Scan(&c.Witness, &hash, &c.Size, &c.Root, &c.Signature, &signed); err != nil {
			return nil, dbErr(op, err)
		}
		c.KeyHash, c.SignedAt = uint32(hash), time.Unix(signed, 0).UTC() // #nosec G115 -- stored from a uint32
		out = append(out, &c)
	}
	return out, dbErr(op, rows.Err())
}

// Cosignatures lists the cosignatures of size (every size when size < 0).
func (s *Store) Cosignatures(ctx context.Context, size int64) ([]*consent.Cosignature, error) {
	const op = "list cosignatures"
	if size < 0 {
		return s.queryCosignatures(ctx, op, `SELECT `+cosignatureColumns+` FROM consent_cosignatures ORDER BY size, witness, key_hash`)
	}
	return s.queryCosignatures(ctx, op, `SELECT `+cosignatureColumns+` FROM consent_cosignatures WHERE size = $1 ORDER BY witness, key_hash`, size)
}

// LatestCosignatures returns each witness key's largest cosigned size.
func (s *Store) LatestCosignatures(ctx context.Context) ([]*consent.Cosignature, error) {
	return s.queryCosignatures(ctx, "latest cosignatures", `SELECT `+cosignatureColumns+` FROM consent_cosignatures c
		WHERE size = (SELECT MAX(size) FROM consent_cosignatures m WHERE m.witness = c.witness AND m.key_hash = c.key_hash)
		ORDER BY witness, key_hash`)
}

// QuorumSizes returns the largest sizes of stored checkpoints that at
// least quorum of keys cosigned with the checkpoint's root. The primary
// key makes each row one key's cosignature of one size.
func (s *Store) QuorumSizes(ctx context.Context, keys []consent.WitnessKey, quorum, limit int) ([]int64, error) {
	const op = "find cosigned sizes"
	if len(keys) == 0 || quorum < 1 || limit < 1 {
		return nil, invalid(op, "witness keys, a positive quorum and a positive limit are required")
	}
	var (
		match []string
		args  []any
	)
	for _, k := range keys {
		args = append(args, k.Name, int64(k.KeyHash))
		match = append(match, fmt.Sprintf("(c.witness = $%d AND c.key_hash = $%d)", len(args)-1, len(args)))
	}
	args = append(args, quorum, limit)
	rows, err := s.db.QueryContext(ctx, `SELECT c.size FROM consent_cosignatures c
		JOIN consent_checkpoints k ON k.size = c.size AND k.root = c.root
		WHERE `+strings.Join(match, " OR ")+` GROUP BY c.size HAVING COUNT(*) >= $`+strconv.Itoa(len(args)-1)+`
		ORDER BY c.size DESC LIMIT $`+strconv.Itoa(len(args)), args...) // #nosec G202 -- placeholders only
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var size int64
		if err := rows.Scan(&size); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, size)
	}
	return out, dbErr(op, rows.Err())
}
