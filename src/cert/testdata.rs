//! Test fixtures shared by the certificate tests in `cert` and `net::cert_files`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rustls::pki_types::CertificateDer;

use super::CertSource;
use crate::proto::key::PublicKey;

// Fixtures made once with the openssl CLI: an RSA-2048 certificate for derp.example.com with
// its PKCS#1 key, and a P-256 certificate for the IP 192.0.2.7 with its SEC1 key.
pub(crate) const RSA_CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDNjCCAh6gAwIBAgIUSjufu9NXJcCYmnOViaKByC2vBiowDQYJKoZIhvcNAQEL\n\
BQAwGzEZMBcGA1UEAwwQZGVycC5leGFtcGxlLmNvbTAgFw0yNjExMjIxMDIzMzla\n\
GA8yMTI2MTAyOTEwMjMzOVowGzEZMBcGA1UEAwwQZGVycC5leGFtcGxlLmNvbTCC\n\
ASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMowDY+FCzpfdA2SV/TPyMsM\n\
ciwJNO9FsJysRJV7zcfgvfMuZ3H0rqG/qp6to16IRxe+9f3cDRM/sXmmHqIlLagT\n\
5+r1T675YED3mGP5eT9GtrRcGzgu27XnkDbig0LkmccdxIfOH30SyhpWSjH7S3xn\n\
2Ko4FGKZ3iLuyQLMRtWAqsGCx6flU37Wdz+5sU3Nu7OIOjpg6yeGkWkUD/da6m48\n\
+qjIa/w7bOXglnZUaInQXRUYAIsRA+cRW/lThJ1kRasGV7A8wUHOix7198JYkBKT\n\
bRyh71ho6y0XQCWk7nRpL6glt0RREnPkEgRTZvwP7h5uTZhjb9u4GPPoUDVd/cEC\n\
AwEAAaNwMG4wHQYDVR0OBBYEFGjb1bHSqRaAfAUMMYwSLZxOgROIMB8GA1UdIwQY\n\
MBaAFGjb1bHSqRaAfAUMMYwSLZxOgROIMA8GA1UdEwEB/wQFMAMBAf8wGwYDVR0R\n\
BBQwEoIQZGVycC5leGFtcGxlLmNvbTANBgkqhkiG9w0BAQsFAAOCAQEAj/wKNpw7\n\
8YbNrjVkJjQcgE7faP6IRPU+cxk6KxhK07mNvl/MA2h1hv3ehwqr1XHWpdXsshm5\n\
T9LTHfc7HWbFC+QsHUmhtSOkcgCZsztAgE1qny9GuzSZwD20wIVSM+5rDe9Y0y+Y\n\
ST/vZKK3udn5mYqdPLOdtR468wSnvVhT1HfA2P7Foe6RDuurxIO/CDAbVl+ugNQA\n\
RNOs+h7yZN0zHsWpsVO/VCnPkYp81UvtUMDZa/f9g+aORPfszKlGVsN7lFF/+8t6\n\
vRyR4xEBR4XjWlG9Tu56+8goaqLvndqwM7Z7vD3LxIJoqF4V1NyHUj8XdvORoZqr\n\
0lqjNRmIrtehDg==\n\
-----END CERTIFICATE-----\n\
";
pub(crate) const RSA_PKCS1_KEY: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEpAIBAAKCAQEAyjANj4ULOl90DZJX9M/IywxyLAk070WwnKxElXvNx+C98y5n\n\
cfSuob+qnq2jXohHF771/dwNEz+xeaYeoiUtqBPn6vVPrvlgQPeYY/l5P0a2tFwb\n\
OC7bteeQNuKDQuSZxx3Eh84ffRLKGlZKMftLfGfYqjgUYpneIu7JAsxG1YCqwYLH\n\
p+VTftZ3P7mxTc27s4g6OmDrJ4aRaRQP91rqbjz6qMhr/Dts5eCWdlRoidBdFRgA\n\
ixED5xFb+VOEnWRFqwZXsDzBQc6LHvX3wliQEpNtHKHvWGjrLRdAJaTudGkvqCW3\n\
RFESc+QSBFNm/A/uHm5NmGNv27gY8+hQNV39wQIDAQABAoIBAAK4QpfFj3kFoNsa\n\
4XCDXV0v3xb3uRImkuw0nAfnvlpRNrTp+6MVNRvWEck90YwGE3C+v/KI2Ssts5Pi\n\
Qm4Qx8xc7Np6BMxNgfg1wcNx2b9FEqmamz92T+cimjZxdcMQA1U3RwttoCT6UaTT\n\
jX7JIC2S/F+OeWW50fq7JryRJhBypcFKGI7lACpctRgG6WV7Yn78B9XLHAu9l5Op\n\
kYHj/6gkSmFEmKQfGzGE+GeV4tPmDfm2j07aZ/1monz2cIi+3jafVb74odFcKYrY\n\
CEqarvZO8mDIuhH0Wew4nAXwGJW1A4BpG4zYh/j/7EB5AkarJuGlFAwldXMyav5G\n\
WtYYaXECgYEA8/haryt4W0jwLpQBfhkehAJtHki7dJ/4vLdoBhp/JSZFKGoSnV1D\n\
JB+3SBU7cX+93ZJ8YYIAbpI1TmewQqR4qfFcfIjguSlThoE+FuBBSkoEqSI+pRYQ\n\
cigVlowony9InPKgSD8FcVgFltU9EIHS2bIpUOjv2ns+9CJ+oLcRHlkCgYEA1ChG\n\
/lRumQDqrTi/v4SB7HJyfsyQxW/riJZVYaTcSgs4ThPu95MpXW15KQxjvZTEGyb7\n\
DjTHQgW3nhSfgf9J8o26fqY4pDqnt6+gwOBz4vtURWY2OcaEvnMHi2K2jL50v7FN\n\
mBNU1EfSBLApNpq8AzpoQvdeZ9ym33TZCmxL/akCgYBuGrKKhbrOr889piw6RYnh\n\
F9s5JKf9DUlLmhZHUuP41xm1EJIQFQv9HJcx3+sw4O7GNZsOwoYBYNjP5rnEicev\n\
Iq+TwI5y4jTA6kkkN9cfeOI7lqnhBWEss+xyQhT/Km7B7jnqAQ8qxQfYt6nUblLD\n\
TsWYr1e4KZESyxKM47HFGQKBgQDRzcr3NDPzJw7sopQtJzL8yukjL9VzCo0YE+L3\n\
nvsiVhomTFwjhOqBNAN/bnssPfP5DgF0OQlb5x+AOtDK09UjArmNCYA2GLNHWW1V\n\
kCHKM9VQlBXH6OPZGxQ46TOx157I+uPLIkLfcu7kJ/l5wGdxoc79endnqrNzg7An\n\
OJWlkQKBgQCoezWFGoSNLT6aJZolCxgtgh27/AbLl6mxjEQ1sii40P5qhgYLr55V\n\
KTrfIYlkNtKotmh7X/DSmWN/kUtAqQaS/A3ZtIg8yGvt9JBJP6L/BMrW4Ap7sP+d\n\
RUhd7R8kReyKm4ma3xkSHxgtliR2Ml/mj+EVq2c5SGbcfIC67VEAuA==\n\
-----END RSA PRIVATE KEY-----\n\
";
pub(crate) const EC_CERT: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBkDCCATagAwIBAgIUTsvABErIxbfY1sq3ZSnLbe6KqJEwCgYIKoZIzj0EAwIw\n\
FDESMBAGA1UEAwwJMTkyLjAuMi43MCAXDTI2MTEyMjEwMjMzOVoYDzIxMjYxMDI5\n\
MTAyMzM5WjAUMRIwEAYDVQQDDAkxOTIuMC4yLjcwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAATAGRgh/3L4tdO3XKMikaOMDTBY5YNRFO2EQp+NFVS6yZUbe3diWxzP\n\
Nm+cimDJsCxCHGtF9gqCzb3QgYkSBrXlo2QwYjAdBgNVHQ4EFgQUnLA90G6YQa1w\n\
NX0fTyZPA5KPai8wHwYDVR0jBBgwFoAUnLA90G6YQa1wNX0fTyZPA5KPai8wDwYD\n\
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwTAAAIHMAoGCCqGSM49BAMCA0gAMEUC\n\
IQDUEMfFKLmNsqLgBrTowIeFP9wqjTdaHyNpBWDDLCluAAIgUlRsxIYXfh+lLDkX\n\
XxxrLJpvOhP1lSeSyMkTeSDX3GY=\n\
-----END CERTIFICATE-----\n\
";
pub(crate) const EC_SEC1_KEY: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEINLiFtOQHrmG8ckXieS4FZV/0CyzuLL8R5KBYrlv0688oAoGCCqGSM49\n\
AwEHoUQDQgAEwBkYIf9y+LXTt1yjIpGjjA0wWOWDURTthEKfjRVUusmVG3t3Ylsc\n\
zzZvnIpgybAsQhxrRfYKgs290IGJEga15Q==\n\
-----END EC PRIVATE KEY-----\n\
";

pub(crate) const HOST: &str = "derp.example.net";

pub(crate) fn self_signed(dir: &Path, names: &[&str], ips: &[IpAddr]) -> CertSource {
    CertSource::SelfSigned {
        dir: dir.to_path_buf(),
        names: names.iter().map(|name| name.to_string()).collect(),
        ips: ips.to_vec(),
    }
}

pub(crate) fn localhost_v4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

pub(crate) fn parse<'a>(
    der: &'a CertificateDer<'_>,
) -> x509_parser::certificate::X509Certificate<'a> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    assert!(rest.is_empty());
    cert
}

pub(crate) fn test_key() -> PublicKey {
    PublicKey(core::array::from_fn(|i| u8::try_from(i).unwrap() * 7))
}
