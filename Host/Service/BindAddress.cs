using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Harness.Host.Service;

/// <summary>
/// The one reading of <c>--metrics-url</c>: an IP address and a port, handed to Kestrel as exactly that endpoint
/// (<c>Listen(IPAddress, port)</c>), so the loopback check and the listener can never disagree. Accepted:
/// <c>http://&lt;IPv4&gt;:&lt;port&gt;</c>, <c>http://[&lt;IPv6&gt;]:&lt;port&gt;</c>, <c>http://localhost:&lt;port&gt;</c>
/// (= 127.0.0.1), optionally with a trailing <c>/</c>. An IPv4-mapped IPv6 address (<c>[::ffff:127.0.0.1]</c>) is the
/// IPv4 address it maps. Refused: user info, paths, queries, <c>;</c> lists, host names, <c>*</c>/<c>+</c>, https.
/// </summary>
public sealed record BindAddress(IPAddress Address, int Port)
{
    public bool IsLoopback => IPAddress.IsLoopback(Address);

    public override string ToString() =>
        Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"http://[{Address}]:{Port}" : $"http://{Address}:{Port}";

    /// <summary>Parses <paramref name="url"/>; on failure <paramref name="error"/> is a one-line reason.</summary>
    public static bool TryParse(string? url, out BindAddress? address, out string? error)
    {
        address = null;
        error = Problem(url, ref address);
        return error is null;
    }

    public static BindAddress Parse(string url) =>
        TryParse(url, out var a, out var e) ? a! : throw new FormatException($"--metrics-url '{url}': {e}");

    private static string? Problem(string? url, ref BindAddress? address)
    {
        if (string.IsNullOrEmpty(url)) return "empty; give http://<ip>:<port>, e.g. http://127.0.0.1:9464";
        if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            return "https is not served by the harness; bind loopback and put a TLS reverse proxy (or an SSH tunnel) in front";
        if (!url.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) return "must be http://<ip>:<port>, e.g. http://127.0.0.1:9464";
        string rest = url["http://".Length..];
        foreach (char c in rest)
        {
            if (c is '@') return "user information ('user@') is not allowed in a listen address";
            if (c is ';' or ',') return "one address only (no ';' or ',' lists)";
            if (c is '?' or '#' or '\\' || char.IsWhiteSpace(c) || char.IsControl(c)) return $"character '{Printable(c)}' is not allowed in a listen address";
        }
        int slash = rest.IndexOf('/');
        if (slash >= 0 && slash != rest.Length - 1) return "a listen address has no path (only an optional trailing '/')";
        string authority = slash >= 0 ? rest[..slash] : rest;

        string host, port;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']');
            if (close < 0 || close + 1 >= authority.Length || authority[close + 1] != ':') return "an IPv6 address is written [address]:port";
            host = authority[1..close];
            port = authority[(close + 2)..];
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6) return $"'{host}' is not an IPv6 address";
        }
        else
        {
            int colon = authority.LastIndexOf(':');
            if (colon < 0) return "the port is required (http://<ip>:<port>; port 0 = any free port)";
            host = authority[..colon];
            port = authority[(colon + 1)..];
            if (host.Contains(':')) return "an IPv6 address must be in brackets: http://[::1]:<port>";
            if (host is "*" or "+") return "wildcards are not accepted; write 0.0.0.0 (every IPv4 interface) or [::] (every interface) explicitly";
        }
        if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit)
            || !int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p > 65535)
            return $"'{port}' is not a port number (0-65535; 0 = any free port)";

        IPAddress ip;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) ip = IPAddress.Loopback;
        else if (!IPAddress.TryParse(host, out ip!) || host.Length == 0)
            return $"'{host}' is not an IP address (host names other than localhost are not resolved: give the address to listen on)";
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        address = new BindAddress(ip, p);
        return null;
    }

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:x4}" : c.ToString();
}
