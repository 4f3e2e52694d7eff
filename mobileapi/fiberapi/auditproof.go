package fiberapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/consent"
)

// inclusionView is GET /v1/access-log/proof: one of the citizen's
// committed chain heads (the latest, or with ?seq=N the one committing
// entry N or the first after it), its leaf in the published checkpoint's
// tree and the proof, and the checkpoint with the witnesses'
// cosignatures. Byte fields are base64.
type inclusionView struct {
	Checkpoint string   `json:"checkpoint"`
	TreeSize   int64    `json:"tree_size"`
	LeafIndex  int64    `json:"leaf_index"`
	Seq        int64    `json:"seq"`
	Hash       []byte   `json:"hash"`
	LeafData   []byte   `json:"leaf_data"`
	Proof      [][]byte `json:"proof"`
}

func (s *Server) accessLogProof(c *fiber.Ctx) error {
	var seq int64
	if q := c.Query("seq"); q != "" || c.Context().QueryArgs().Has("seq") {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 || q != strconv.FormatInt(n, 10) {
			return s.fail(c, invalidParam("seq", "must be an entry's sequence number (a positive decimal integer)"))
		}
		seq = n
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	p := &consent.Published{Store: s.cfg.Audit, Witnesses: s.cfg.AuditWitnesses, Quorum: s.cfg.AuditQuorum}
	in, err := p.ProveInclusion(ctx, citizenOf(c), seq)
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	v := inclusionView{Checkpoint: in.Checkpoint, TreeSize: in.TreeSize, LeafIndex: in.LeafIndex, Seq: in.Seq, Hash: in.Hash,
		LeafData: in.LeafData, Proof: make([][]byte, len(in.Proof))}
	for i := range in.Proof {
		v.Proof[i] = in.Proof[i][:]
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(v)
}
