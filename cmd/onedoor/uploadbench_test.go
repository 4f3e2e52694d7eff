package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// uploadBody is a multipart body of one file of size bytes (a PDF header,
// then filler) generated as it is read, so the client holds none of it and
// the heap the benchmark sees is the server's.
type uploadBody struct {
	head, tail string
	size, off  int64 // file bytes, bytes read so far (of head+file+tail)
}

const uploadBoundary = "bench-boundary-7d3f"

func newUploadBody(size int64) *uploadBody {
	return &uploadBody{
		head: "--" + uploadBoundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n",
		tail: "\r\n--" + uploadBoundary + "--\r\n",
		size: size - int64(len("%PDF-1.4\n")),
	}
}

func (u *uploadBody) Len() int64 { return int64(len(u.head)) + u.size + int64(len(u.tail)) }

func (u *uploadBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch h, f := int64(len(u.head)), int64(len(u.head))+u.size; {
		case u.off < h:
			c := copy(p[n:], u.head[u.off:])
			n, u.off = n+c, u.off+int64(c)
		case u.off < f:
			c := min(int64(len(p)-n), f-u.off)
			for i := range c {
				p[n+int(i)] = 'x'
			}
			n, u.off = n+int(c), u.off+c
		case u.off < u.Len():
			c := copy(p[n:], u.tail[u.off-f:])
			n, u.off = n+c, u.off+int64(c)
		default:
			return n, io.EOF
		}
	}
	return n, nil
}

// BenchmarkMobileAPI_Upload measures what uploads cost the server's heap:
// bytes allocated per 10 MB upload, and the peak heap in use while 20 of
// them arrive at once (sampled every millisecond, above the heap before the
// burst). Agencies' result documents are used because an application holds
// any number of them.
func BenchmarkMobileAPI_Upload(b *testing.B) {
	e := startBenchAPI(b)
	seedAgencies(b, e.m)
	ministry := e.agencyAPI(b, "T-BTP")
	svc := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-BENCH", []byte(birthService)).json(b)
	cit := e.citizenAPI(b, e.app)
	app := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svc["id"].(string)+`"}`)).json(b)["id"].(string)
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+app, []byte(`{"form":{"child_name":"Con","child_birthdate":"2026-11-20"}}`),
		"Content-Type", "application/merge-patch+json")
	att, ct := multipartFile(b, "cs.pdf", []byte("%PDF-1.4\n%%EOF\n"), "document_code", "birth_certificate")
	cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+app+"/attachments", att, "Content-Type", ct)
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+app+"/submit", nil)
	agency := e.agencyAPI(b, "T-UBND-HN")
	u := "http://" + e.m.APIAddr + "/agency/v1/applications/" + app + "/documents"

	for _, size := range []int64{10 << 20} {
		for _, conc := range []int{1, 20} {
			b.Run(fmt.Sprintf("size=%dMiB/concurrent=%d", size>>20, conc), func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, WriteBufferSize: 32 << 10}, Timeout: time.Minute}
				upload := func() error {
					body := newUploadBody(size)
					req, _ := http.NewRequest(http.MethodPost, u, body)
					req.ContentLength = body.Len()
					req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
					authorize(b, req, agency.token)
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					msg, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != http.StatusCreated {
						return fmt.Errorf("%d %s", resp.StatusCode, msg)
					}
					return nil
				}
				if err := upload(); err != nil { // warm the connection pool
					b.Fatal(err)
				}
				var peak, base uint64
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				base = ms.HeapInuse
				alloc0 := ms.TotalAlloc
				uploads := 0
				var stop atomic.Bool
				var sampler sync.WaitGroup
				sampler.Add(1)
				go func() {
					defer sampler.Done()
					var m runtime.MemStats
					for !stop.Load() {
						runtime.ReadMemStats(&m)
						peak = max(peak, m.HeapInuse)
						time.Sleep(time.Millisecond)
					}
				}()
				b.ResetTimer()
				for b.Loop() {
					var wg sync.WaitGroup
					errs := make(chan error, conc)
					for range conc {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := upload(); err != nil {
								errs <- err
							}
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
					uploads += conc
				}
				b.StopTimer()
				stop.Store(true)
				sampler.Wait()
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.TotalAlloc-alloc0)/float64(uploads), "alloc-B/upload")
				b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-inuse-MiB")
				b.ReportMetric(float64(size*int64(uploads))/b.Elapsed().Seconds()/(1<<20), "MiB/s")
				client.CloseIdleConnections()
			})
		}
	}
}
