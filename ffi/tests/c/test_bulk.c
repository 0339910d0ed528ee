/* Bulk forms: many batch operations in one call, all deltas in one call. */
#include "util.h"

void test_bulk(const char *base) {
  cvg_engine_t *a = open_engine(base, "bulk-a", 0x31);
  cvg_engine_t *b = open_engine(base, "bulk-b", 0x32);
  cvg_batch_t *batch = cvg_batch_new();
  cvg_deltas_t *deltas = NULL;
  const char keys[] = "k1k22k333";
  size_t key_lens[3] = {2, 3, 4};
  uint64_t amounts[3] = {1, 2, 3};
  int64_t signed_amounts[3] = {-1, 5, -7};
  cvg_slice_t kbuf, dbuf;
  const cvg_span_t *kspans = NULL, *dspans = NULL;
  size_t count = 0, i;
  int64_t v = 0;
  size_t bad_lens[3] = {2, 3, 5};
  size_t pn_lens[2] = {2, 2};

  OK(cvg_batch_increment_many(batch, (const uint8_t *)keys, 9, key_lens, amounts, 3));
  OK(cvg_batch_increment_many(batch, (const uint8_t *)keys, 9, key_lens, amounts, 3));
  OK(cvg_batch_pn_add_many(batch, S("pnpq"), pn_lens, signed_amounts, 2));
  CHECK(cvg_batch_len(batch) == 8);
  /* Lengths that do not add up: nothing is added. */
  EXPECT_ERR(CVG_STATUS_INVALID_ARGUMENT,
             cvg_batch_increment_many(batch, (const uint8_t *)keys, 9, bad_lens, amounts, 3));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_batch_increment_many(batch, NULL, 9, key_lens, amounts, 3));
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_batch_increment_many(NULL, (const uint8_t *)keys, 9, key_lens, amounts, 3));
  OK(cvg_batch_increment_many(batch, NULL, 0, NULL, NULL, 0));
  CHECK(cvg_batch_len(batch) == 8);

  OK(cvg_engine_write(a, batch, &deltas));
  OK(cvg_deltas_packed(deltas, &kbuf, &kspans, &dbuf, &dspans, &count));
  CHECK(count == 8 && count == cvg_deltas_len(deltas));
  for (i = 0; i < count; i++) {
    cvg_slice_t k, d;
    OK(cvg_deltas_get(deltas, i, &k, &d));
    CHECK(bytes_eq(k.ptr, k.len, kbuf.ptr + kspans[i].offset, kspans[i].len));
    CHECK(bytes_eq(d.ptr, d.len, dbuf.ptr + dspans[i].offset, dspans[i].len));
  }
  EXPECT_ERR(CVG_STATUS_NULL_POINTER,
             cvg_deltas_packed(deltas, NULL, &kspans, &dbuf, &dspans, &count));
  OK(cvg_engine_counter_value(a, S("k333"), &v));
  CHECK(v == 6);

  /* Ship every delta to b in one bulk merge (a batch is not emptied by
   * a write). */
  OK(cvg_batch_clear(batch));
  {
    size_t *klens = (size_t *)malloc(count * sizeof(size_t));
    size_t *dlens = (size_t *)malloc(count * sizeof(size_t));
    CHECK(klens != NULL && dlens != NULL);
    for (i = 0; i < count; i++) {
      klens[i] = kspans[i].len;
      dlens[i] = dspans[i].len;
    }
    OK(cvg_batch_merge_many(batch, kbuf.ptr, kbuf.len, klens, dbuf.ptr, dbuf.len, dlens, count));
    free(klens);
    free(dlens);
  }
  cvg_deltas_free(deltas);
  OK(cvg_engine_write(b, batch, NULL));
  OK(cvg_engine_counter_value(b, S("k22"), &v));
  CHECK(v == 4);
  OK(cvg_engine_counter_value(b, S("pq"), &v));
  CHECK(v == 5);
  cvg_batch_free(batch);
  OK(cvg_engine_close(a));
  OK(cvg_engine_close(b));
}
