# Sourced by the benchmarks that give the `default` source a mapping (docs/benchmarks.md,
# issue 15): one source_user mapping that reshapes every user of `roster-load creates` (the
# userName lower-cased, the displayName built from the name).
#   set_source_mapping HOST:PORT ADMIN_TOKEN
set_source_mapping() {
    local api="http://$1/admin/v1" admin=$2
    local expression='{\"userName\": user.userName.lowerAscii(), \"displayName\": has(user.name) && has(user.name.givenName) && has(user.name.familyName) ? user.name.givenName + \" \" + user.name.familyName : user.userName}'
    curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d "{\"name\": \"shape\", \"kind\": \"source_user\", \"expression\": \"$expression\"}" \
        "$api/mappings" >/dev/null
    curl -sf -X PUT -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d '{"mappings": ["shape"]}' "$api/sources/default/mappings" >/dev/null
}
