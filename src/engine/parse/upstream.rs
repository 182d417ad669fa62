//! Upstream names as proxies write them: nginx's multi-valued `$upstream_*` fields (and where an
//! access-log line's upstream is among its fields), and the
//! `upstream: "http://10.0.1.5:8080/path"` context of error-log lines.

use super::bytes;
use super::nginx_access::Fields;
use crate::engine::event::Span;

/// Iterates the items of an nginx `$upstream_*` field: `10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80`.
/// `, ` separates the servers tried for one request; ` : ` separates internal redirects.
pub struct UpstreamList<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> UpstreamList<'a> {
    pub fn new(field: &'a [u8]) -> UpstreamList<'a> {
        UpstreamList {
            rest: field,
            done: field.is_empty(),
        }
    }
}

impl<'a> Iterator for UpstreamList<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        let end = super::bytes::find_byte2(b',', b' ', self.rest).unwrap_or(self.rest.len());
        let item = &self.rest[..end];
        let after = &self.rest[end..];
        if let Some(r) = after.strip_prefix(b", ") {
            self.rest = r;
        } else if let Some(r) = after.strip_prefix(b" : ") {
            self.rest = r;
        } else if let Some(r) = after.strip_prefix(b",") {
            self.rest = r;
        } else {
            self.done = true;
        }
        Some(item)
    }
}

/// The length of the multi-valued field at the start of `b`: items separated by `, ` or ` : `,
/// each item ending at a space, a comma, or `stop`.
pub fn list_len(b: &[u8], stop: u8) -> usize {
    let mut pos = 0;
    loop {
        let item_end =
            super::bytes::find_byte3(b' ', b',', stop, &b[pos..]).map_or(b.len(), |i| pos + i);
        let after = &b[item_end..];
        if after.starts_with(b", ") {
            pos = item_end + 2;
        } else if after.starts_with(b" : ") {
            pos = item_end + 3;
        } else {
            return item_end;
        }
    }
}

/// The last item of a multi-valued field (the upstream the client's answer came from).
pub fn last_item(field: &[u8]) -> &[u8] {
    UpstreamList::new(field).last().unwrap_or(field)
}

/// True when every item of the field is `-` (nginx: "not connected" for `$upstream_connect_time`).
pub fn all_dash(field: &[u8]) -> bool {
    let mut any = false;
    for item in UpstreamList::new(field) {
        if item != b"-" {
            return false;
        }
        any = true;
    }
    any
}

/// True for an nginx upstream *pool* name (`backend`) rather than an address: nginx writes the
/// pool's name into `$upstream_addr` and the `upstream:` context when no server of the pool is
/// live.
pub fn is_pool_name(addr: &[u8]) -> bool {
    !addr.is_empty() && addr != b"-" && !addr.starts_with(b"unix:") && !addr.contains(&b':')
}

/// The upstream named by an nginx error-log `upstream:` value: the scheme and the URI are
/// removed. `http://10.0.1.5:8080/v1/x` → `10.0.1.5:8080`; `http://unix:/run/app.sock:/x` →
/// `unix:/run/app.sock`; `fastcgi://unix:/run/php.sock:` → `unix:/run/php.sock`;
/// `http://[::1]:8080/` → `[::1]:8080`; `http://backend/x` → `backend`.
pub fn from_url(url: &[u8]) -> &[u8] {
    let rest = match find!(url, b"://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    if let Some(path) = rest.strip_prefix(b"unix:") {
        // `unix:/path/to.sock:/uri` — the socket path ends at the `:` before the URI.
        let end = memchr::memchr(b':', path).unwrap_or(path.len());
        return &rest[..5 + end];
    }
    if rest.first() == Some(&b'[') {
        let close = memchr::memchr(b']', rest).map_or(rest.len(), |i| i + 1);
        let end = memchr::memchr(b'/', &rest[close..]).map_or(rest.len(), |i| close + i);
        return &rest[..end];
    }
    let end = memchr::memchr(b'/', rest).unwrap_or(rest.len());
    &rest[..end]
}

/// The longest upstream name kept as a key (detector, counters); longer names are cut. Real
/// names are short (`host:port`, `unix:/path`, `backend/server`); a long one comes from a
/// proxy that passes to a name taken from the request.
pub const MAX_KEY: usize = 255;

/// An upstream name as used for a key: cut to [`MAX_KEY`] bytes.
pub fn key(name: &[u8]) -> &[u8] {
    &name[..name.len().min(MAX_KEY)]
}

/// Where a line's upstream is.
pub(super) struct Upstream<'a> {
    /// The last upstream tried (or the balancer worker's `host:port`).
    pub(super) upstream: Span,
    /// Every upstream tried, as written.
    pub(super) upstreams: Span,
    /// The last item of `$upstream_addr`, `-` included (it names the cause).
    pub(super) last: Option<&'a [u8]>,
    /// ingress-nginx's service, which names the upstream once one was tried.
    pub(super) service: Span,
}

/// Where the upstream of a line of nginx's (or Apache's) access log is, from its fields.
pub(super) fn of_fields<'a>(line: &'a [u8], f: &Fields) -> Upstream<'a> {
    let mut up = Upstream {
        upstream: Span::NONE,
        upstreams: Span::NONE,
        last: None,
        service: Span::NONE,
    };
    if let Some(addrs) = f.upstream_addr.get(line).filter(|a| *a != b"-") {
        up.upstreams = Span::of(line, addrs);
        // Nearly every line has a single upstream: no need to walk a list.
        let l = if bytes::find_byte2(b',', b' ', addrs).is_none() {
            addrs
        } else {
            last_item(addrs)
        };
        if l != b"-" && !l.is_empty() {
            up.upstream = Span::of(line, l);
        }
        up.last = Some(l);
    }
    if up.upstream.is_none()
        && let Some(h) = f
            .upstream_host
            .get(line)
            .filter(|h| !h.is_empty() && *h != b"-")
    {
        // Apache's `%{BALANCER_WORKER_NAME}e` is the worker's URL: its `host:port`.
        let h = match find!(h, b"://") {
            Some(i) => {
                let rest = &h[i + 3..];
                &rest[..memchr::memchr(b'/', rest).unwrap_or(rest.len())]
            }
            None => h,
        };
        up.upstream = Span::of(line, h);
        up.upstreams = up.upstream;
    }
    // ingress-nginx: the service is the upstream (`upstreams` keeps the pods tried, by which
    // the error log's lines are joined), once the pods' addresses named the cause.
    if let Some(svc) = f.service.get(line).filter(|s| !s.is_empty() && *s != b"-")
        && !up.upstream.is_none()
    {
        up.service = Span::of(line, svc);
    }
    up
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_both_separators() {
        let items: Vec<&[u8]> =
            UpstreamList::new(b"10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80").collect();
        assert_eq!(items, [&b"10.0.0.1:80"[..], b"10.0.0.2:80", b"10.0.0.3:80"]);
        assert_eq!(last_item(b"502, 502 : 200"), b"200");
        assert_eq!(last_item(b"10.0.1.5:8080"), b"10.0.1.5:8080");
        assert!(all_dash(b"-, - : -"));
        assert!(!all_dash(b"-, 0.001"));
        assert!(!all_dash(b""));
    }

    #[test]
    fn list_length_stops_at_the_next_field() {
        let line = b"10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80 502, 502 : 200 rest";
        let n = list_len(line, b' ');
        assert_eq!(&line[..n], b"10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80");
        let json = b"10.0.0.1:80, 10.0.0.2:80\",\"x\":1";
        assert_eq!(&json[..list_len(json, b'"')], b"10.0.0.1:80, 10.0.0.2:80");
        assert_eq!(list_len(b"- 502", b' '), 1);
    }

    #[test]
    fn urls_become_upstream_names() {
        assert_eq!(from_url(b"http://10.0.1.5:8080/v1/x"), b"10.0.1.5:8080");
        assert_eq!(
            from_url(b"http://unix:/run/app.sock:/v1/x"),
            b"unix:/run/app.sock"
        );
        assert_eq!(
            from_url(b"fastcgi://unix:/run/php/php8.2-fpm.sock:"),
            b"unix:/run/php/php8.2-fpm.sock"
        );
        assert_eq!(from_url(b"http://[::1]:8080/x"), b"[::1]:8080");
        assert_eq!(from_url(b"http://backend/x"), b"backend");
        assert_eq!(from_url(b"grpc://10.0.0.9:50051"), b"10.0.0.9:50051");
        assert!(is_pool_name(b"backend"));
        assert!(!is_pool_name(b"10.0.1.5:8080"));
        assert!(!is_pool_name(b"unix:/run/app.sock"));
    }
}
