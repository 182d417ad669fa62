# Sourced by scripts/bench-formats.sh and scripts/bench-ab.sh: `bench_file FORMAT` sets `file`
# (the benchmark file of that format under $dir, for $lines lines) and `grep` (the ripgrep count
# it is compared with).
bench_file() {
    case $1 in
        nginx) file="$dir/access-$lines.log"; grep=(rg -c ' 502 ') ;;
        nginx_error) file="$dir/error-$lines.log"; grep=(rg -c 'connect\(\) failed') ;;
        haproxy) file="$dir/haproxy-$lines.log"; grep=(rg -c ' SC-- ') ;;
        alb) file="$dir/alb-$lines.log.gz"; grep=(rg -z -c ' 502 - ') ;;
        *) echo "unknown format $1" >&2; exit 2 ;;
    esac
}
