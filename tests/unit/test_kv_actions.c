/* Every v2 action and every error the store raises, checked as the bytes etcd answers with
 * (status + JSON body), following spec/etcd-v2-api.md §4.5-§4.10, §6 and §17. */
#include <check.h>

#include "kv_test_util.h"

Suite *test_kv_actions_suite(void);

#define EXPECT(t, method, path, params, expected)                                                  \
    ck_assert_str_eq(kvt_req((t), (method), (path), (params)), (expected))

START_TEST(test_set_creates_then_replaces_and_resets_created_index)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/foo", "value=bar",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\","
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/foo", "value=baz",
           "200 {\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"baz\","
           "\"modifiedIndex\":2,\"createdIndex\":2},\"prevNode\":{\"key\":\"/foo\",\"value\":"
           "\"bar\",\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/foo", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/foo\",\"value\":\"baz\","
           "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    /* A value may be empty and is still shown. */
    EXPECT(&t, "PUT", "/empty", "",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/empty\",\"value\":\"\","
           "\"modifiedIndex\":3,\"createdIndex\":3}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_set_dir_and_set_over_dir_returns_102)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/dir1", "dir=true&value=ignored",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/dir1\",\"dir\":true,"
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/dir1", "value=x",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/dir1\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/dir1", "dir=true",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/dir1\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/dir1", "refresh=true&ttl=5",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/dir1\",\"index\":1}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_set_dir_over_file_replaces_it_with_an_empty_dir)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/f", "value=v");
    EXPECT(&t, "PUT", "/f", "dir=true",
           "200 {\"action\":\"set\",\"node\":{\"key\":\"/f\",\"dir\":true,\"modifiedIndex\":2,"
           "\"createdIndex\":2},\"prevNode\":{\"key\":\"/f\",\"value\":\"v\",\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_set_creates_missing_parent_dirs_at_the_write_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    EXPECT(&t, "PUT", "/dir1/sub/b", "value=x",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/dir1/sub/b\",\"value\":\"x\","
           "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    EXPECT(&t, "GET", "/dir1", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/dir1\",\"dir\":true,\"nodes\":[{\"key\":"
           "\"/dir1/sub\",\"dir\":true,\"modifiedIndex\":2,\"createdIndex\":2}],"
           "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_set_below_a_file_returns_104_naming_the_file)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/f", "value=v");
    EXPECT(&t, "PUT", "/f/child", "value=x",
           "400 {\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/f\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/f/child/deeper", "prevExist=false",
           "400 {\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/f\",\"index\":1}\n");
    EXPECT(&t, "POST", "/f", "value=x",
           "400 {\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/f\",\"index\":1}\n");
    EXPECT(&t, "GET", "/f/child", "",
           "400 {\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/f\",\"index\":1}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_writes_to_the_root_return_107)
{
    struct kvt t;
    kvt_open(&t);
    const char *e107 =
            "400 {\"errorCode\":107,\"message\":\"Root is read only\",\"cause\":\"/\",\"index\":0}\n";
    EXPECT(&t, "PUT", "/", "value=x", e107);
    EXPECT(&t, "PUT", "", "prevExist=false", e107);
    EXPECT(&t, "PUT", "/", "prevExist=true", e107);
    EXPECT(&t, "PUT", "/", "prevValue=a", e107);
    EXPECT(&t, "DELETE", "/", "recursive=true", e107);
    EXPECT(&t, "DELETE", "//", "prevIndex=3", e107);
    EXPECT(&t, "GET", "/", "", "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_create_makes_new_keys_and_returns_105_on_existing_ones)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/newkey", "value=new&prevExist=false",
           "201 {\"action\":\"create\",\"node\":{\"key\":\"/newkey\",\"value\":\"new\","
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    /* prevExist=false beats prevValue (spec §17 quirk 5). */
    EXPECT(&t, "PUT", "/newkey", "value=x&prevExist=false&prevValue=new",
           "412 {\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"/newkey\","
           "\"index\":1}\n");
    EXPECT(&t, "PUT", "/d", "dir=true&prevExist=false",
           "201 {\"action\":\"create\",\"node\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":2,"
           "\"createdIndex\":2}}\n");
    EXPECT(&t, "PUT", "/d", "prevExist=false",
           "412 {\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"/d\","
           "\"index\":2}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_update_keeps_created_index_and_returns_100_when_missing)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/missing", "value=x&prevExist=true",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/missing\","
           "\"index\":0}\n");
    kvt_req(&t, "PUT", "/k", "value=a");
    EXPECT(&t, "PUT", "/k", "value=b&prevExist=true",
           "200 {\"action\":\"update\",\"node\":{\"key\":\"/k\",\"value\":\"b\",\"modifiedIndex\":2,"
           "\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":\"a\",\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    /* dir=true on a file is ignored by update: the value becomes "". */
    EXPECT(&t, "PUT", "/k", "dir=true&prevExist=true",
           "200 {\"action\":\"update\",\"node\":{\"key\":\"/k\",\"value\":\"\",\"modifiedIndex\":3,"
           "\"createdIndex\":1},\"prevNode\":{\"key\":\"/k\",\"value\":\"b\",\"modifiedIndex\":2,"
           "\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_update_with_empty_ttl_removes_the_ttl)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/t1", "value=x&ttl=5",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/t1\",\"value\":\"x\",\"expiration\":"
           "\"2027-01-15T08:00:05Z\",\"ttl\":5,\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    t.now_ns += 1600000000; /* 1.6 s later: 3.4 s left, shown as 4 */
    EXPECT(&t, "PUT", "/t1", "value=x&ttl=&prevExist=true",
           "200 {\"action\":\"update\",\"node\":{\"key\":\"/t1\",\"value\":\"x\","
           "\"modifiedIndex\":2,\"createdIndex\":1},\"prevNode\":{\"key\":\"/t1\",\"value\":\"x\","
           "\"expiration\":\"2027-01-15T08:00:05Z\",\"ttl\":4,\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    t.now_ns += 100ll * 1000000000;
    ck_assert_str_eq(kvt_sync(&t), "");
    EXPECT(&t, "GET", "/t1", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/t1\",\"value\":\"x\",\"modifiedIndex\":2,"
           "\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_update_of_a_dir_sets_ttl_and_a_get_shows_the_old_modified_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/ud", "dir=true");
    EXPECT(&t, "PUT", "/ud", "dir=true&ttl=100&prevExist=true",
           "200 {\"action\":\"update\",\"node\":{\"key\":\"/ud\",\"dir\":true,\"expiration\":"
           "\"2027-01-15T08:01:40Z\",\"ttl\":100,\"modifiedIndex\":2,\"createdIndex\":1},"
           "\"prevNode\":{\"key\":\"/ud\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/ud", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/ud\",\"dir\":true,\"expiration\":"
           "\"2027-01-15T08:01:40Z\",\"ttl\":100,\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/ud", "value=v&prevExist=true",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/ud\",\"index\":2}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_cas_swaps_on_match_and_names_what_failed_in_101)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/foo", "value=upd");
    EXPECT(&t, "PUT", "/foo", "value=cas&prevValue=upd",
           "200 {\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/foo\",\"value\":\"cas\","
           "\"modifiedIndex\":2,\"createdIndex\":1},\"prevNode\":{\"key\":\"/foo\",\"value\":"
           "\"upd\",\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/foo", "value=cas2&prevIndex=1&prevValue=wrong",
           "412 {\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":"
           "\"[wrong != cas] [1 != 2]\",\"index\":2}\n");
    EXPECT(&t, "PUT", "/foo", "value=cas2&prevValue=wrong",
           "412 {\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[wrong != cas]\","
           "\"index\":2}\n");
    EXPECT(&t, "PUT", "/foo", "value=cas2&prevIndex=7&prevExist=true",
           "412 {\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[7 != 2]\","
           "\"index\":2}\n");
    EXPECT(&t, "PUT", "/foo", "value=cas3&prevIndex=2&prevValue=cas",
           "200 {\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/foo\",\"value\":\"cas3\","
           "\"modifiedIndex\":3,\"createdIndex\":1},\"prevNode\":{\"key\":\"/foo\",\"value\":"
           "\"cas\",\"modifiedIndex\":2,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/nope", "value=x&prevIndex=1",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/nope\",\"index\":3}\n");
    kvt_req(&t, "PUT", "/d", "dir=true");
    EXPECT(&t, "PUT", "/d", "value=x&prevIndex=4",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/d\",\"index\":4}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_prev_index_zero_turns_cas_into_set)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/k", "value=a");
    EXPECT(&t, "PUT", "/k", "value=b&prevIndex=0",
           "200 {\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"b\",\"modifiedIndex\":2,"
           "\"createdIndex\":2},\"prevNode\":{\"key\":\"/k\",\"value\":\"a\",\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_post_names_children_by_the_new_index_zero_padded)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/x", "value=1");
    EXPECT(&t, "POST", "/queue", "value=Job1",
           "201 {\"action\":\"create\",\"node\":{\"key\":\"/queue/00000000000000000002\",\"value\":"
           "\"Job1\",\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    EXPECT(&t, "POST", "/queue", "value=Job2&prevExist=true&prevValue=zz",
           "201 {\"action\":\"create\",\"node\":{\"key\":\"/queue/00000000000000000003\",\"value\":"
           "\"Job2\",\"modifiedIndex\":3,\"createdIndex\":3}}\n");
    EXPECT(&t, "GET", "/queue", "recursive=true&sorted=true",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/queue\",\"dir\":true,\"nodes\":[{\"key\":"
           "\"/queue/00000000000000000002\",\"value\":\"Job1\",\"modifiedIndex\":2,"
           "\"createdIndex\":2},{\"key\":\"/queue/00000000000000000003\",\"value\":\"Job2\","
           "\"modifiedIndex\":3,\"createdIndex\":3}],\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    EXPECT(&t, "POST", "/", "dir=true",
           "201 {\"action\":\"create\",\"node\":{\"key\":\"/00000000000000000004\",\"dir\":true,"
           "\"modifiedIndex\":4,\"createdIndex\":4}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_delete_of_a_file_shows_no_value_and_the_new_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/foo", "value=cas4");
    EXPECT(&t, "DELETE", "/foo", "",
           "200 {\"action\":\"delete\",\"node\":{\"key\":\"/foo\",\"modifiedIndex\":2,"
           "\"createdIndex\":1},\"prevNode\":{\"key\":\"/foo\",\"value\":\"cas4\","
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "DELETE", "/foo", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/foo\",\"index\":2}\n");
    EXPECT(&t, "GET", "/foo", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/foo\",\"index\":2}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_delete_of_dirs_needs_dir_or_recursive_and_returns_102_or_108)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/dir1/a", "value=1");
    kvt_req(&t, "PUT", "/empty", "dir=true");
    EXPECT(&t, "DELETE", "/dir1", "",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/dir1\",\"index\":2}\n");
    EXPECT(&t, "DELETE", "/dir1", "dir=true",
           "403 {\"errorCode\":108,\"message\":\"Directory not empty\",\"cause\":\"/dir1\","
           "\"index\":2}\n");
    EXPECT(&t, "DELETE", "/empty", "dir=true",
           "200 {\"action\":\"delete\",\"node\":{\"key\":\"/empty\",\"dir\":true,"
           "\"modifiedIndex\":3,\"createdIndex\":2},\"prevNode\":{\"key\":\"/empty\",\"dir\":true,"
           "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    EXPECT(&t, "DELETE", "/dir1", "recursive=true",
           "200 {\"action\":\"delete\",\"node\":{\"key\":\"/dir1\",\"dir\":true,"
           "\"modifiedIndex\":4,\"createdIndex\":1},\"prevNode\":{\"key\":\"/dir1\",\"dir\":true,"
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/dir1/a", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/dir1\",\"index\":4}\n");
    EXPECT(&t, "GET", "/", "", "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    /* A hidden child makes a dir non-empty too. */
    kvt_req(&t, "PUT", "/h/_x", "value=1");
    EXPECT(&t, "DELETE", "/h", "dir=true",
           "403 {\"errorCode\":108,\"message\":\"Directory not empty\",\"cause\":\"/h\","
           "\"index\":5}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_compare_and_delete_checks_value_and_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/cad", "value=two");
    EXPECT(&t, "DELETE", "/cad", "prevValue=one",
           "412 {\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[one != two]\","
           "\"index\":1}\n");
    EXPECT(&t, "DELETE", "/cad", "prevIndex=1",
           "200 {\"action\":\"compareAndDelete\",\"node\":{\"key\":\"/cad\",\"modifiedIndex\":2,"
           "\"createdIndex\":1},\"prevNode\":{\"key\":\"/cad\",\"value\":\"two\","
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    kvt_req(&t, "PUT", "/d", "dir=true");
    EXPECT(&t, "DELETE", "/d", "prevIndex=3&recursive=true",
           "403 {\"errorCode\":102,\"message\":\"Not a file\",\"cause\":\"/d\",\"index\":3}\n");
    EXPECT(&t, "DELETE", "/gone", "prevValue=x",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/gone\",\"index\":3}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_get_reports_the_first_missing_component)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a/b", "value=1");
    EXPECT(&t, "GET", "/nothere/deeper", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/nothere\","
           "\"index\":1}\n");
    EXPECT(&t, "GET", "/a/c/d", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/a/c\",\"index\":1}\n");
    /* Paths are cleaned like etcd's store does. */
    EXPECT(&t, "GET", "a//b/", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/a/b\",\"value\":\"1\",\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/a/x/../b", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/a/b\",\"value\":\"1\",\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_get_lists_direct_visible_children_or_the_whole_subtree)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/d/b", "value=2");
    kvt_req(&t, "PUT", "/d/a", "value=1");
    kvt_req(&t, "PUT", "/d/_hidden", "value=h");
    kvt_req(&t, "PUT", "/d/sub/x", "value=3");
    kvt_req(&t, "PUT", "/d/sub/_y", "value=4");
    kvt_req(&t, "PUT", "/d/empty", "dir=true");
    kvt_req(&t, "PUT", "/_top", "value=t");
    EXPECT(&t, "GET", "/d", "sorted=true",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":["
           "{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":2,\"createdIndex\":2},"
           "{\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":1,\"createdIndex\":1},"
           "{\"key\":\"/d/empty\",\"dir\":true,\"modifiedIndex\":6,\"createdIndex\":6},"
           "{\"key\":\"/d/sub\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],"
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/d", "recursive=true&sorted=true",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":["
           "{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":2,\"createdIndex\":2},"
           "{\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":1,\"createdIndex\":1},"
           "{\"key\":\"/d/empty\",\"dir\":true,\"modifiedIndex\":6,\"createdIndex\":6},"
           "{\"key\":\"/d/sub\",\"dir\":true,\"nodes\":[{\"key\":\"/d/sub/x\",\"value\":\"3\","
           "\"modifiedIndex\":4,\"createdIndex\":4}],\"modifiedIndex\":4,\"createdIndex\":4}],"
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    /* Hidden nodes are readable by their own path, and left out of the root listing. */
    EXPECT(&t, "GET", "/d/_hidden", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/d/_hidden\",\"value\":\"h\","
           "\"modifiedIndex\":3,\"createdIndex\":3}}\n");
    EXPECT(&t, "GET", "/", "",
           "200 {\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/d\",\"dir\":true,"
           "\"modifiedIndex\":1,\"createdIndex\":1}]}}\n");
    /* recursive on a file is the same as without; a quorum GET through the log answers alike
     * and moves no index. */
    EXPECT(&t, "QGET", "/d/a", "recursive=true",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/d/a\",\"value\":\"1\",\"modifiedIndex\":2,"
           "\"createdIndex\":2}}\n");
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_indexes(t.s, &applied, &etcd), 0);
    ck_assert_uint_eq(applied, 8);
    ck_assert_uint_eq(etcd, 7);
    kvt_close(&t);
}
END_TEST

START_TEST(test_ttl_is_rounded_up_and_sync_expires_with_an_expire_event)
{
    struct kvt t;
    kvt_open(&t);
    t.now_ns += 123456789; /* 08:00:00.123456789 */
    EXPECT(&t, "PUT", "/exp", "value=bye&ttl=3",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/exp\",\"value\":\"bye\",\"expiration\":"
           "\"2027-01-15T08:00:03.123456789Z\",\"ttl\":3,\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    t.now_ns += 600000000; /* 2.4 s left -> 3 */
    EXPECT(&t, "GET", "/exp", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/exp\",\"value\":\"bye\",\"expiration\":"
           "\"2027-01-15T08:00:03.123456789Z\",\"ttl\":3,\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    t.now_ns += 1000000000; /* 1.4 s left -> 2 */
    ck_assert_str_eq(kvt_sync(&t), "");
    EXPECT(&t, "GET", "/exp", "",
           "200 {\"action\":\"get\",\"node\":{\"key\":\"/exp\",\"value\":\"bye\",\"expiration\":"
           "\"2027-01-15T08:00:03.123456789Z\",\"ttl\":2,\"modifiedIndex\":1,"
           "\"createdIndex\":1}}\n");
    t.now_ns += 1400000000; /* exactly the expiration: expires (not after the cutoff) */
    ck_assert_str_eq(kvt_sync(&t),
                     "{\"action\":\"expire\",\"node\":{\"key\":\"/exp\",\"modifiedIndex\":2,"
                     "\"createdIndex\":1},\"prevNode\":{\"key\":\"/exp\",\"value\":\"bye\","
                     "\"expiration\":\"2027-01-15T08:00:03.123456789Z\",\"modifiedIndex\":1,"
                     "\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/exp", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/exp\",\"index\":2}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_ttl_zero_shows_expiration_without_ttl_and_expires_at_next_sync)
{
    struct kvt t;
    kvt_open(&t);
    EXPECT(&t, "PUT", "/z", "value=v&ttl=0",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/z\",\"value\":\"v\",\"expiration\":"
           "\"2027-01-15T08:00:00Z\",\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    ck_assert_str_ne(kvt_sync(&t), "");
    EXPECT(&t, "GET", "/", "", "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_an_expiring_dir_takes_its_subtree_in_one_event)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/expdir", "dir=true&ttl=2");
    kvt_req(&t, "PUT", "/expdir/child", "value=c&ttl=1");
    kvt_req(&t, "PUT", "/expdir/sub/x", "value=x");
    kvt_req(&t, "PUT", "/keep", "value=k&ttl=10");
    t.now_ns += 2000000000;
    ck_assert_str_eq(kvt_sync(&t),
                     "{\"action\":\"expire\",\"node\":{\"key\":\"/expdir/child\","
                     "\"modifiedIndex\":5,\"createdIndex\":2},\"prevNode\":{\"key\":"
                     "\"/expdir/child\",\"value\":\"c\",\"expiration\":\"2027-01-15T08:00:01Z\","
                     "\"ttl\":-1,\"modifiedIndex\":2,\"createdIndex\":2}}\n"
                     "{\"action\":\"expire\",\"node\":{\"key\":\"/expdir\",\"dir\":true,"
                     "\"modifiedIndex\":6,\"createdIndex\":1},\"prevNode\":{\"key\":\"/expdir\","
                     "\"dir\":true,\"expiration\":\"2027-01-15T08:00:02Z\",\"modifiedIndex\":1,"
                     "\"createdIndex\":1}}\n");
    EXPECT(&t, "GET", "/", "recursive=true",
           "200 {\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/keep\",\"value\":"
           "\"k\",\"expiration\":\"2027-01-15T08:00:10Z\",\"ttl\":8,\"modifiedIndex\":4,"
           "\"createdIndex\":4}]}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_refresh_keeps_the_value_and_follows_the_put_dispatch)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/rf", "value=keep&ttl=200");
    t.now_ns += 1000000000;
    EXPECT(&t, "PUT", "/rf", "refresh=true&ttl=200&prevExist=true",
           "200 {\"action\":\"update\",\"node\":{\"key\":\"/rf\",\"value\":\"keep\",\"expiration\":"
           "\"2027-01-15T08:03:21Z\",\"ttl\":200,\"modifiedIndex\":2,\"createdIndex\":1},"
           "\"prevNode\":{\"key\":\"/rf\",\"value\":\"keep\",\"expiration\":"
           "\"2027-01-15T08:03:20Z\",\"ttl\":199,\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/rf", "refresh=true&ttl=50&prevValue=keep",
           "200 {\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/rf\",\"value\":\"keep\","
           "\"expiration\":\"2027-01-15T08:00:51Z\",\"ttl\":50,\"modifiedIndex\":3,"
           "\"createdIndex\":1},\"prevNode\":{\"key\":\"/rf\",\"value\":\"keep\",\"expiration\":"
           "\"2027-01-15T08:03:21Z\",\"ttl\":200,\"modifiedIndex\":2,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/rf", "refresh=true&ttl=60",
           "200 {\"action\":\"set\",\"node\":{\"key\":\"/rf\",\"value\":\"keep\",\"expiration\":"
           "\"2027-01-15T08:01:01Z\",\"ttl\":60,\"modifiedIndex\":4,\"createdIndex\":4},"
           "\"prevNode\":{\"key\":\"/rf\",\"value\":\"keep\",\"expiration\":"
           "\"2027-01-15T08:00:51Z\",\"ttl\":50,\"modifiedIndex\":3,\"createdIndex\":1}}\n");
    EXPECT(&t, "PUT", "/nothere", "refresh=true&ttl=60",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/nothere\","
           "\"index\":4}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_failed_writes_change_nothing_and_move_no_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/f", "value=v");
    kvt_req(&t, "PUT", "/f", "prevExist=false");
    kvt_req(&t, "PUT", "/f/x/y", "value=v");
    kvt_req(&t, "DELETE", "/nothere/x", "");
    kvt_req(&t, "POST", "/f", "");
    EXPECT(&t, "GET", "/", "recursive=true",
           "200 {\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/f\",\"value\":"
           "\"v\",\"modifiedIndex\":1,\"createdIndex\":1}]}}\n");
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_indexes(t.s, &applied, &etcd), 0);
    ck_assert_uint_eq(applied, 5);
    ck_assert_uint_eq(etcd, 1);
    kvt_close(&t);
}
END_TEST

static void watch_nop_cb(struct kv_watcher *w, void *data)
{
    (void)w;
    (void)data;
}

START_TEST(test_limits_on_key_value_depth_and_ttl_answer_209_and_202)
{
    struct kvt t;
    struct kv_limits lim = { .key_bytes_max = 16, .value_bytes_max = 8, .depth_max = 3 };
    kvt_open_with(&t, &lim);
    EXPECT(&t, "PUT", "/0123456789abcdef", "value=x",
           "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
           "\"key is longer than 16 bytes\",\"index\":0}\n");
    EXPECT(&t, "PUT", "/k", "value=123456789",
           "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
           "\"value is larger than 8 bytes\",\"index\":0}\n");
    EXPECT(&t, "PUT", "/a/b/c/d", "value=x",
           "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
           "\"key has more than 3 components\",\"index\":0}\n");
    EXPECT(&t, "PUT", "/k", "value=x&ttl=9223372037",
           "400 {\"errorCode\":202,\"message\":\"The given TTL in POST form is not a number\","
           "\"cause\":\"invalid value for \\\"ttl\\\"\",\"index\":0}\n");
    EXPECT(&t, "PUT", "/k", "value=12345678",
           "201 {\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"12345678\","
           "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    /* A key beyond the limits cannot exist: reading or changing it answers as for any missing
     * key (etcd has no such limits); only storing one is refused. */
    EXPECT(&t, "GET", "/0123456789abcdef", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":"
           "\"/0123456789abcdef\",\"index\":1}\n");
    EXPECT(&t, "DELETE", "/x/0123456789abcdef", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/x\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/k/0123456789abcdef", "value=x&prevExist=true",
           "400 {\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/k\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/0123456789abcdef", "value=x&prevValue=y",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":"
           "\"/0123456789abcdef\",\"index\":1}\n");
    EXPECT(&t, "GET", "/a/b/c/d", "",
           "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/a\",\"index\":1}\n");
    EXPECT(&t, "PUT", "/0123456789abcdef", "value=x&prevExist=false",
           "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
           "\"key is longer than 16 bytes\",\"index\":0}\n");
    struct kv_watch_opts o = { .key = "/0123456789abcdef/x", .key_len = 19 };
    struct kv_watcher *w;
    struct kv_error err;
    uint64_t idx;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, watch_nop_cb, NULL, &w, &idx, &err), 0);
    kv_watcher_free(w);
    /* POST adds a 21-byte component, which must fit too. */
    EXPECT(&t, "POST", "/q", "value=x",
           "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
           "\"key is longer than 16 bytes\",\"index\":0}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_undecodable_entries_and_replayed_entries_are_skipped)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    const uint8_t junk[] = { 0xff, 0xff, 0xff };
    struct kv_entry e[3] = {
        { .raft_index = 1, .data = junk, .len = sizeof(junk) }, /* replayed: skipped */
        { .raft_index = 2, .data = junk, .len = sizeof(junk) }, /* not a KvRequest */
        { .raft_index = 3, .data = NULL, .len = 0 },            /* empty entry */
    };
    struct kv_batch b;
    ck_assert_int_eq(kv_apply_batch(t.s, e, 3, &b), 0);
    ck_assert_uint_eq(b.result_count, 2);
    ck_assert_int_eq(b.results[0].rc, K_ECORRUPT);
    ck_assert_uint_eq(b.results[0].raft_index, 2);
    ck_assert_int_eq(b.results[1].rc, 0);
    ck_assert_ptr_null(b.results[1].event);
    ck_assert_uint_eq(b.applied_index, 3);
    ck_assert_uint_eq(b.etcd_index, 1);
    ck_assert_uint_eq(b.event_count, 0);
    kv_batch_free(&b);
    kvt_close(&t);
}
END_TEST

START_TEST(test_no_value_on_success_writes_only_the_action)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    struct kv_event *ev;
    struct kv_error err;
    ck_assert_int_eq(kv_get(t.s, "/a", 2, false, false, t.now_ns, &ev, &err), 0);
    struct k_buf b = { 0 };
    kv_json_event(ev, true, &b); /* no effect on get */
    ev->action = KV_ACTION_COMPARE_AND_SWAP;
    kv_json_event(ev, true, &b);
    ck_assert_str_eq(b.data, "{\"action\":\"get\",\"node\":{\"key\":\"/a\",\"value\":\"1\","
                             "\"modifiedIndex\":1,\"createdIndex\":1}}\n"
                             "{\"action\":\"compareAndSwap\"}\n");
    k_buf_free(&b);
    kv_event_unref(ev);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_actions_suite(void)
{
    Suite *s = suite_create("kv_actions");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_set_creates_then_replaces_and_resets_created_index);
    tcase_add_test(tc, test_set_dir_and_set_over_dir_returns_102);
    tcase_add_test(tc, test_set_dir_over_file_replaces_it_with_an_empty_dir);
    tcase_add_test(tc, test_set_creates_missing_parent_dirs_at_the_write_index);
    tcase_add_test(tc, test_set_below_a_file_returns_104_naming_the_file);
    tcase_add_test(tc, test_writes_to_the_root_return_107);
    tcase_add_test(tc, test_create_makes_new_keys_and_returns_105_on_existing_ones);
    tcase_add_test(tc, test_update_keeps_created_index_and_returns_100_when_missing);
    tcase_add_test(tc, test_update_with_empty_ttl_removes_the_ttl);
    tcase_add_test(tc, test_update_of_a_dir_sets_ttl_and_a_get_shows_the_old_modified_index);
    tcase_add_test(tc, test_cas_swaps_on_match_and_names_what_failed_in_101);
    tcase_add_test(tc, test_prev_index_zero_turns_cas_into_set);
    tcase_add_test(tc, test_post_names_children_by_the_new_index_zero_padded);
    tcase_add_test(tc, test_delete_of_a_file_shows_no_value_and_the_new_index);
    tcase_add_test(tc, test_delete_of_dirs_needs_dir_or_recursive_and_returns_102_or_108);
    tcase_add_test(tc, test_compare_and_delete_checks_value_and_index);
    tcase_add_test(tc, test_get_reports_the_first_missing_component);
    tcase_add_test(tc, test_get_lists_direct_visible_children_or_the_whole_subtree);
    tcase_add_test(tc, test_ttl_is_rounded_up_and_sync_expires_with_an_expire_event);
    tcase_add_test(tc, test_ttl_zero_shows_expiration_without_ttl_and_expires_at_next_sync);
    tcase_add_test(tc, test_an_expiring_dir_takes_its_subtree_in_one_event);
    tcase_add_test(tc, test_refresh_keeps_the_value_and_follows_the_put_dispatch);
    tcase_add_test(tc, test_failed_writes_change_nothing_and_move_no_index);
    tcase_add_test(tc, test_limits_on_key_value_depth_and_ttl_answer_209_and_202);
    tcase_add_test(tc, test_undecodable_entries_and_replayed_entries_are_skipped);
    tcase_add_test(tc, test_no_value_on_success_writes_only_the_action);
    suite_add_tcase(s, tc);
    return s;
}
