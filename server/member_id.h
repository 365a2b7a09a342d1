/* Member and cluster IDs computed exactly as etcd computes them (spec §2), so a member's
 * ID is the same under etcd and ketchd for the same flags, and scripts that name members
 * by ID keep working. */
#ifndef KETCH_SERVER_MEMBER_ID_H
#define KETCH_SERVER_MEMBER_ID_H

#include <stddef.h>
#include <stdint.h>

#include "server/member_url.h"

/* First 8 bytes (big-endian) of SHA-1(peer URLs sorted as strings, concatenated, then
 * salt). salt is the --initial-cluster-token at static bootstrap, the token followed by the
 * decimal Unix time for a runtime add, or the full discovery URL. */
uint64_t srv_member_id_compute(const struct srv_url_list *peer_urls, const char *salt);

/* First 8 bytes (big-endian) of SHA-1 of the member IDs sorted ascending, each as 8
 * big-endian bytes. */
uint64_t srv_cluster_id_compute(const uint64_t *member_ids, size_t count);

/* Writes id as lowercase hex without leading zeros (etcd's FormatUint(id, 16)). */
void srv_id_format(uint64_t id, char out[17]);

/* Parses hex of at most 16 digits; returns 0 or K_ECONFIG. */
int srv_id_parse(const char *text, uint64_t *out);

#endif
