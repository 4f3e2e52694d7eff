// Package search is the catalog's in-memory search index: services found by
// their Vietnamese or English name and description, with or without
// diacritics, by the prefix of the word being typed, or by procedure code,
// ranked by relevance. Every replica builds its own from the catalog store
// (Cache keeps it current); nothing here touches SQL or HTTP.
package search

import (
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/onedoor/onedoor/mobileapi"
)

// Query asks the index for services.
type Query struct {
	// Text is what the citizen typed: words of a name or description
	// (Vietnamese with or without diacritics, or English) or a procedure
	// code. The last word matches as a prefix unless followed by a space.
	// Text without words lists the services by name.
	Text string
	// Category keeps only the services of this category when set.
	Category string
	// Lang is "en" to order by English names; anything else orders by
	// Vietnamese names.
	Lang string
	// Offset hits are skipped; Limit caps the hits returned, none when 0
	// or less. The order is total and stable for one Index, so a caller
	// pages with an offset cursor and learns whether another page exists
	// by asking for Limit+1.
	Offset, Limit int
}

// Hit is a service found, with its relevance (higher first; 0 when listing
// without text).
type Hit struct {
	Service *mobileapi.Service
	Score   float64
}

// Scores of the tiers of relevance. Within a name tier, a name the text
// covers more of ranks higher (scoreCover times the share of the name's
// words the text makes up: "khai sinh" is more of "Đăng ký khai sinh" than of
// "Cấp bản sao trích lục khai sinh"); equal scores are ordered by name, then
// code.
const (
	scoreCode        = 1000 // the text is the service's code
	scoreNameEqual   = 400  // the name is the text
	scoreNameStart   = 350  // the name starts with the text as a phrase
	scoreNamePhrase  = 300  // the name holds the text as a phrase
	scoreNameAll     = 200  // the name holds every word
	scoreDescription = 100  // every word is in the name or description,
	scoreNameShare   = 50   // plus this times the share of them in the name
	scoreCover       = 40   // less than the gap between name tiers
)

// maxWords bounds the distinct words of a query that count: the matching
// keeps one bit per word. Later words are ignored.
const maxWords = 64

// Fields of a service a word occurs in.
const (
	fieldName uint8 = 1 << iota
	fieldDescription
)

// Index is an immutable search index over a set of services; it is safe
// for concurrent use. The services must not be modified while it is in use.
type Index struct {
	docs []doc
	// vocab is every folded word of the names and descriptions, sorted:
	// a word's number is its position, so the words with a prefix are a
	// range of numbers. postings[t] lists the docs holding word t, in
	// ascending order.
	vocab    []string
	postings [][]posting
	byCode   map[string][]int32
	byID     map[string]*mobileapi.Service
	// byName lists the docs by name in Vietnamese (0) and English (1);
	// rank is the inverse, a doc's position there.
	byName  [2][]int32
	rank    [2][]int32
	version int64
	scratch sync.Pool // of *scratch
}

type doc struct {
	svc  *mobileapi.Service
	name [2][]int32 // the words of the names, Vietnamese and English
}

type posting struct {
	doc    int32
	fields uint8
}

// scratch holds per-doc bitsets of the query words found, reused across
// searches so a search allocates little more than its result.
type scratch struct {
	found   []uint64 // words found anywhere
	inName  []uint64 // words found in a name
	touched []int32
	keys    []uint64
}

// New builds an index over services (nil entries are skipped).
func New(services []*mobileapi.Service) *Index {
	ix := &Index{byCode: make(map[string][]int32), byID: make(map[string]*mobileapi.Service, len(services))}
	// Words are numbered in order of appearance first and renumbered in
	// sorted order at the end. Folding goes word by word through a memo:
	// a catalog repeats a small vocabulary.
	number := make(map[string]int32)
	memo := make(map[string]string)
	var postings [][]posting
	var buf []string
	add := func(d int32, text string, field uint8) []int32 {
		buf = foldWords(buf[:0], text, memo)
		ids := make([]int32, len(buf))
		for i, w := range buf {
			t, ok := number[w]
			if !ok {
				t = int32(len(postings)) //nolint:gosec // a vocabulary is far below 2^31 words
				number[w] = t
				postings = append(postings, nil)
			}
			ids[i] = t
			// Docs come in order: a doc already listed is the last one.
			if ps := postings[t]; len(ps) > 0 && ps[len(ps)-1].doc == d {
				ps[len(ps)-1].fields |= field
			} else {
				postings[t] = append(ps, posting{doc: d, fields: field})
			}
		}
		return ids
	}
	for _, s := range services {
		if s == nil {
			continue
		}
		d := int32(len(ix.docs)) //nolint:gosec // a catalog is far below 2^31 services
		ix.docs = append(ix.docs, doc{svc: s, name: [2][]int32{
			add(d, s.Name.VI, fieldName),
			add(d, s.Name.EN, fieldName),
		}})
		add(d, s.Description.VI, fieldDescription)
		add(d, s.Description.EN, fieldDescription)
		if c := fold(s.Code); c != "" {
			ix.byCode[c] = append(ix.byCode[c], d)
		}
		ix.byID[s.ID] = s
	}

	ix.vocab = make([]string, 0, len(number))
	for w := range number {
		ix.vocab = append(ix.vocab, w)
	}
	slices.Sort(ix.vocab)
	renumber := make([]int32, len(number))
	ix.postings = make([][]posting, len(ix.vocab))
	for t, w := range ix.vocab {
		renumber[number[w]] = int32(t)
		ix.postings[t] = postings[number[w]]
	}
	for i := range ix.docs {
		for _, name := range ix.docs[i].name {
			for j, t := range name {
				name[j] = renumber[t]
			}
		}
	}

	for l, lang := range [2]string{"vi", "en"} {
		keys := make([]string, len(ix.docs))
		for i := range ix.docs {
			s := ix.docs[i].svc
			name := s.Name.In(lang)
			keys[i] = fold(name) + "\x00" + name + "\x00" + s.Code + "\x00" + s.ID
		}
		order := make([]int32, len(ix.docs))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return strings.Compare(keys[a], keys[b]) })
		rank := make([]int32, len(ix.docs))
		for r, d := range order {
			rank[d] = int32(r)
		}
		ix.byName[l], ix.rank[l] = order, rank
	}
	n := len(ix.docs)
	ix.scratch.New = func() any {
		return &scratch{found: make([]uint64, n), inName: make([]uint64, n)}
	}
	return ix
}

// CountOwnedBy returns how many indexed services the agency owns.
func (ix *Index) CountOwnedBy(agency string) int {
	n := 0
	for _, d := range ix.docs {
		if d.svc.AgencyCode == agency {
			n++
		}
	}
	return n
}

// Get returns the indexed service with the given id, or nil.
func (ix *Index) Get(id string) *mobileapi.Service { return ix.byID[id] }

// Len returns the number of services indexed.
func (ix *Index) Len() int { return len(ix.docs) }

// Version returns the catalog version the index was built from (Cache sets
// it; 0 for an index from New). It suits an ETag of search results.
func (ix *Index) Version() int64 { return ix.version }

// span is the range of word numbers [lo, hi) a query word matches: one
// word, or every word it is a prefix of.
type span struct{ lo, hi int32 }

func (s span) has(t int32) bool { return s.lo <= t && t < s.hi }

// lookup returns the span of w, empty when no word matches.
func (ix *Index) lookup(w string, prefix bool) span {
	lo := sort.SearchStrings(ix.vocab, w)
	hi := lo
	switch {
	case prefix:
		// The words w begins are contiguous from lo on.
		hi = lo + sort.Search(len(ix.vocab)-lo, func(i int) bool { return !strings.HasPrefix(ix.vocab[lo+i], w) })
	case lo < len(ix.vocab) && ix.vocab[lo] == w:
		hi++
	}
	return span{int32(lo), int32(hi)} //nolint:gosec // word numbers fit (New)
}

// Search returns the services matching q, best first. A service matches
// when its code is the text, or when every word of the text is in its name
// or description (in either language); ranking prefers the code, then the
// text as a phrase of the name, then every word in the name, then the rest.
func (ix *Index) Search(q Query) []Hit {
	l := 0
	if q.Lang == "en" {
		l = 1
	}
	folded := fold(q.Text)
	var buf [16]string
	all := tokens(buf[:0], folded)
	if len(all) == 0 {
		return ix.list(q, l)
	}
	last, _ := utf8.DecodeLastRuneInString(q.Text)
	typing := !unicode.IsSpace(last)

	// The query's words in order (for phrases) and the distinct ones
	// (for matching), each with its span; the last one is a prefix while
	// being typed.
	var seqBuf [16]span
	seq := seqBuf[:0]
	for i, w := range all {
		seq = append(seq, ix.lookup(w, typing && i == len(all)-1))
	}
	var distinctBuf [16]span
	distinct := distinctBuf[:0]
	for i, s := range seq {
		if slices.Contains(all[:i], all[i]) {
			// A word repeated: its first occurrence is whole, which is
			// stricter than the last one's prefix.
			continue
		}
		if len(distinct) == maxWords {
			break
		}
		distinct = append(distinct, s)
	}

	sc := ix.scratch.Get().(*scratch)
	defer ix.scratch.Put(sc)
	keys := sc.keys[:0]
	key := func(d int32, score uint32) uint64 {
		// Best first: the complement of the score, then the rank by name,
		// which is unique per doc, in one integer that sorts fast.
		return uint64(^score)<<32 | uint64(ix.rank[l][d]) //nolint:gosec // rank >= 0
	}
	codeDocs := ix.byCode[folded]
	for _, d := range codeDocs {
		if ix.inCategory(d, q.Category) {
			keys = append(keys, key(d, scoreCode))
		}
	}
	for _, d := range ix.match(sc, distinct) {
		if !ix.inCategory(d, q.Category) || slices.Contains(codeDocs, d) {
			continue
		}
		keys = append(keys, key(d, ix.score(d, seq, sc.found[d], sc.inName[d], len(distinct))))
	}
	for _, d := range sc.touched {
		sc.found[d], sc.inName[d] = 0, 0
	}
	sc.touched = sc.touched[:0]
	keys = best(keys, max(q.Offset, 0), q.Limit)
	sc.keys = keys

	keys = page(keys, q.Offset, q.Limit)
	if len(keys) == 0 {
		return nil
	}
	hits := make([]Hit, len(keys))
	for i, k := range keys {
		d := ix.byName[l][uint32(k)] //nolint:gosec // the low half is the rank
		hits[i] = Hit{Service: ix.docs[d].svc, Score: float64(^uint32(k >> 32))}
	}
	return hits
}

// list returns the services (of the category) by name.
func (ix *Index) list(q Query, l int) []Hit {
	skip, hits := max(q.Offset, 0), []Hit(nil)
	if q.Limit > 0 {
		hits = make([]Hit, 0, min(q.Limit, len(ix.docs)))
	}
	for _, d := range ix.byName[l] {
		if !ix.inCategory(d, q.Category) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if q.Limit > 0 && len(hits) == q.Limit {
			break
		}
		hits = append(hits, Hit{Service: ix.docs[d].svc})
	}
	if len(hits) == 0 {
		return nil
	}
	return hits
}

func (ix *Index) inCategory(d int32, category string) bool {
	return category == "" || ix.docs[d].svc.Category == category
}

// match returns the docs holding every word, leaving in sc the bits of the
// words found per doc. Rarer words go first, so later ones only visit docs
// still in the running.
func (ix *Index) match(sc *scratch, words []span) []int32 {
	var sizeBuf, orderBuf [16]int
	size, order := sizeBuf[:0], orderBuf[:0]
	for i, w := range words {
		if w.lo >= w.hi {
			return nil // a word found nowhere: nothing holds them all
		}
		n := 0
		for t := w.lo; t < w.hi; t++ {
			n += len(ix.postings[t])
		}
		size, order = append(size, n), append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int { return size[a] - size[b] })

	var seen uint64 // bits of the words processed so far
	for n, i := range order {
		bit := uint64(1) << i
		for t := words[i].lo; t < words[i].hi; t++ {
			for _, p := range ix.postings[t] {
				if n == 0 {
					if sc.found[p.doc] == 0 {
						sc.touched = append(sc.touched, p.doc)
					}
				} else if sc.found[p.doc]&seen != seen {
					continue // missed an earlier word
				}
				sc.found[p.doc] |= bit
				if p.fields&fieldName != 0 {
					sc.inName[p.doc] |= bit
				}
			}
		}
		seen |= bit
	}
	// Keep in touched the docs holding every word (the caller clears
	// them after scoring) and clear the others now.
	out := sc.touched[:0]
	for _, d := range sc.touched {
		if sc.found[d] == seen {
			out = append(out, d)
		} else {
			sc.found[d], sc.inName[d] = 0, 0
		}
	}
	sc.touched = out
	return out
}

// score ranks a doc holding every word: seq is the query's words in order;
// found and inName are the bits of the n distinct words found anywhere and
// in a name.
func (ix *Index) score(d int32, seq []span, found, inName uint64, n int) uint32 {
	if inName != found {
		share := uint32(bits.OnesCount64(inName)) * scoreNameShare / uint32(n) //nolint:gosec // n <= maxWords
		return scoreDescription + share
	}
	var best uint32
	for _, name := range ix.docs[d].name {
		if len(name) == 0 {
			continue
		}
		// The share of the name's words the query's make up (capped: a
		// repeated word may count more than once).
		cover := uint32(min(len(seq), len(name))) * scoreCover / uint32(len(name)) //nolint:gosec // small
		switch at := phrase(name, seq); {
		case at == 0 && len(name) == len(seq):
			best = max(best, scoreNameEqual)
		case at == 0:
			best = max(best, scoreNameStart+cover)
		case at > 0:
			best = max(best, scoreNamePhrase+cover)
		case holdsAll(name, seq):
			best = max(best, scoreNameAll+cover)
		}
	}
	// The words may be spread over both names (a query mixing languages).
	return max(best, scoreNameAll)
}

// phrase returns where the words of seq occur consecutively in name, or -1.
func phrase(name []int32, seq []span) int {
	for at := 0; at+len(seq) <= len(name); at++ {
		if !seq[0].has(name[at]) {
			continue
		}
		j := 1
		for j < len(seq) && seq[j].has(name[at+j]) {
			j++
		}
		if j == len(seq) {
			return at
		}
	}
	return -1
}

// holdsAll reports whether every word of seq is in name.
func holdsAll(name []int32, seq []span) bool {
	for _, s := range seq {
		if !slices.ContainsFunc(name, s.has) {
			return false
		}
	}
	return true
}

// best sorts keys, or when only the first offset+limit are wanted of many,
// moves those to the front in order and drops the rest.
func best(keys []uint64, offset, limit int) []uint64 {
	k := offset + limit
	if limit <= 0 || k <= 0 || k > len(keys)/4 {
		slices.Sort(keys)
		return keys
	}
	// A max-heap of the k smallest keys in keys[:k].
	top := keys[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(top, i)
	}
	for _, x := range keys[k:] {
		if x < top[0] {
			top[0] = x
			siftDown(top, 0)
		}
	}
	slices.Sort(top)
	return top
}

func siftDown(h []uint64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] > h[c] {
			c++
		}
		if h[i] >= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// page cuts one page out of the ordered keys.
func page(keys []uint64, offset, limit int) []uint64 {
	offset = max(offset, 0)
	if offset >= len(keys) {
		return nil
	}
	keys = keys[offset:]
	if limit > 0 && limit < len(keys) {
		keys = keys[:limit]
	}
	return keys
}
