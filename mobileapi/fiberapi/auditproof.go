package fiberapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/consent"
)

// inclusionView is GET /v1/access-log/proof: the citizen's latest
// committed chain head, its leaf in the latest checkpoint's tree and the
// proof, and the checkpoint with the witnesses' cosignatures. Byte fields
// are base64.
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
	ctx, cancel := s.ctx(c)
	defer cancel()
	in, err := consent.ProveInclusion(ctx, s.cfg.Audit, citizenOf(c))
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
