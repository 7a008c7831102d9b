//! A lab of many generated domains of seven kinds, healthy and broken, hosted the way mail is
//! hosted: a few MX fleets each serve thousands of domains, and each fleet's policy host
//! serves their policies. For tests and benchmarks of checkers that take many domains at once.

use std::io;

use crate::dns::{DnsHandle, Zone};
use crate::https::{HttpBehaviour, HttpsHandle, Site};
use crate::lab::Lab;
use crate::smtp::{SmtpBehaviour, SmtpHandle};

/// The kinds of generated domain, taken in turn ([`DomainKind::of`]): each is judged
/// differently, so a report given to the wrong domain, or a lost DNS answer, shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainKind {
    /// Records, an enforced policy and an MX with a good certificate.
    Healthy,
    /// A testing policy over an MX whose certificate expired.
    TestingExpiredMx,
    /// No `_mta-sts` record.
    NoRecord,
    /// A record, but the policy host answers 404.
    PolicyNotFound,
    /// An enforced policy over an MX without STARTTLS.
    EnforceWithoutStartTls,
    /// The `_mta-sts` lookup fails (SERVFAIL).
    RecordServFail,
    /// The domain does not exist (NXDOMAIN).
    NxDomain,
}

impl DomainKind {
    /// Every kind, in the order domains take them.
    pub const ALL: [DomainKind; 7] = [
        DomainKind::Healthy,
        DomainKind::TestingExpiredMx,
        DomainKind::NoRecord,
        DomainKind::PolicyNotFound,
        DomainKind::EnforceWithoutStartTls,
        DomainKind::RecordServFail,
        DomainKind::NxDomain,
    ];

    /// The kind of the `index`-th domain.
    pub fn of(index: usize) -> DomainKind {
        Self::ALL[index % Self::ALL.len()]
    }

    /// The sender verdict a correct checker gives (`sender.status` of `check --json`), having
    /// probed the MX hosts over SMTP or not.
    pub fn status(self, smtp: bool) -> &'static str {
        match self {
            DomainKind::Healthy if smtp => "protected",
            DomainKind::EnforceWithoutStartTls if smtp => "mail-would-bounce",
            DomainKind::Healthy | DomainKind::EnforceWithoutStartTls => "enforced-untested",
            DomainKind::TestingExpiredMx => "testing",
            DomainKind::NoRecord
            | DomainKind::PolicyNotFound
            | DomainKind::RecordServFail
            | DomainKind::NxDomain => "not-protected",
        }
    }

    /// A finding code a correct checker reports for this kind (with SMTP probes, or without
    /// when the code is not about SMTP), if the kind has one of its own.
    pub fn finding(self, smtp: bool) -> Option<&'static str> {
        match self {
            DomainKind::Healthy => None,
            DomainKind::TestingExpiredMx => smtp.then_some("smtp-cert-expired"),
            DomainKind::NoRecord => Some("sts-record-missing"),
            DomainKind::PolicyNotFound => Some("policy-http-status"),
            DomainKind::EnforceWithoutStartTls => smtp.then_some("smtp-no-starttls"),
            DomainKind::RecordServFail => Some("sts-record-lookup-failed"),
            DomainKind::NxDomain => Some("domain-not-found"),
        }
    }
}

/// The MX servers of one fleet.
const FLEET_HOSTS: [&str; 3] = ["mx-good", "mx-expired", "mx-plain"];

/// A running lab of [`ManyDomains::count`] generated domains: `d0000.example`, … of the
/// kinds [`DomainKind::of`] gives, spread over the fleets `fleet0.example`, … (domain `i` on
/// fleet `(i / 7) % fleets`, so every fleet has every kind). Each fleet has three MX servers
/// (`mx-good`, `mx-expired`, `mx-plain`) and one HTTPS server for its domains' policy hosts;
/// one DNS server answers for everything.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use mta_sts_testnet::{DomainKind, ManyDomains};
///
/// let lab = ManyDomains::start(700, 2).await?;
/// assert_eq!(ManyDomains::domain(8), "d0008.example");
/// assert_eq!(ManyDomains::kind(8), DomainKind::TestingExpiredMx);
/// assert_eq!(lab.mx_host(8), "mx-expired.fleet1.example");
/// // Point the client under test at lab.dns().addr(), trust lab.lab().ca(), and map ports
/// // 25 and 443 to lab.lab().smtp_port() and lab.lab().https_port().
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ManyDomains {
    lab: Lab,
    dns: DnsHandle,
    /// One per fleet.
    web: Vec<HttpsHandle>,
    /// [`FLEET_HOSTS`] of each fleet, fleet after fleet.
    mx: Vec<SmtpHandle>,
    count: usize,
    fleets: usize,
}

impl ManyDomains {
    /// Starts a lab of `count` domains on `fleets` fleets (at least 1).
    pub async fn start(count: usize, fleets: usize) -> io::Result<Self> {
        Self::start_in(Lab::new(), count, fleets).await
    }

    /// [`ManyDomains::start`] with the servers in `lab` (its CA and port plan).
    pub async fn start_in(lab: Lab, count: usize, fleets: usize) -> io::Result<Self> {
        let fleets = fleets.max(1);
        let mut mx = Vec::with_capacity(fleets * FLEET_HOSTS.len());
        for fleet in 0..fleets {
            for host in FLEET_HOSTS {
                let name = format!("{host}.{}", fleet_domain(fleet));
                let certificate = |expired: bool| {
                    if expired {
                        lab.ca().issue_expired(&[&name])
                    } else {
                        lab.ca().issue(&[&name])
                    }
                    .map_err(io::Error::other)
                };
                let behaviour = match host {
                    "mx-good" => SmtpBehaviour::starttls(certificate(false)?),
                    "mx-expired" => SmtpBehaviour::starttls(certificate(true)?),
                    _ => SmtpBehaviour::NoStartTls,
                };
                mx.push(lab.smtp(&name, behaviour).await?);
            }
        }
        let mut web = Vec::with_capacity(fleets);
        for fleet in 0..fleets {
            let sites = (0..count)
                .filter(|i| fleet_of(*i, fleets) == fleet)
                .filter_map(|i| site(i, fleets));
            web.push(lab.https(sites).await?);
        }
        let mut zones: Vec<Zone> = (0..fleets)
            .map(|fleet| {
                FLEET_HOSTS
                    .iter()
                    .enumerate()
                    .fold(Zone::new(&fleet_domain(fleet)), |zone, (h, host)| {
                        zone.address(host, mx[fleet * FLEET_HOSTS.len() + h].ip())
                    })
            })
            .collect();
        zones.extend((0..count).map(|i| zone(i, fleets, &web)));
        let dns = lab.dns(zones).await?;
        Ok(Self {
            lab,
            dns,
            web,
            mx,
            count,
            fleets,
        })
    }

    /// The name of the `index`-th domain.
    pub fn domain(index: usize) -> String {
        format!("d{index:04}.example")
    }

    /// The kind of the `index`-th domain.
    pub fn kind(index: usize) -> DomainKind {
        DomainKind::of(index)
    }

    /// The MX host of the `index`-th domain.
    pub fn mx_host(&self, index: usize) -> String {
        mx_host(index, self.fleets)
    }

    /// How many domains.
    pub fn count(&self) -> usize {
        self.count
    }

    /// How many fleets.
    pub fn fleets(&self) -> usize {
        self.fleets
    }

    /// The lab: its CA and ports.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The DNS server answering for every domain and fleet.
    pub fn dns(&self) -> &DnsHandle {
        &self.dns
    }

    /// Every MX server (three per fleet).
    pub fn mx_servers(&self) -> &[SmtpHandle] {
        &self.mx
    }

    /// The policy hosts' HTTPS servers (one per fleet).
    pub fn policy_servers(&self) -> &[HttpsHandle] {
        &self.web
    }
}

fn fleet_domain(fleet: usize) -> String {
    format!("fleet{fleet}.example")
}

fn fleet_of(index: usize, fleets: usize) -> usize {
    (index / DomainKind::ALL.len()) % fleets
}

fn mx_host(index: usize, fleets: usize) -> String {
    let host = match DomainKind::of(index) {
        DomainKind::TestingExpiredMx => "mx-expired",
        DomainKind::EnforceWithoutStartTls => "mx-plain",
        _ => "mx-good",
    };
    format!("{host}.{}", fleet_domain(fleet_of(index, fleets)))
}

/// The policy host of the `index`-th domain, when it has one.
fn site(index: usize, fleets: usize) -> Option<Site> {
    let kind = DomainKind::of(index);
    let host = format!("mta-sts.{}", ManyDomains::domain(index));
    let mode = if kind == DomainKind::TestingExpiredMx {
        "testing"
    } else {
        "enforce"
    };
    let fleet = fleet_domain(fleet_of(index, fleets));
    let policy = format!("version: STSv1\nmode: {mode}\nmx: *.{fleet}\nmax_age: 86400\n");
    match kind {
        DomainKind::NxDomain => None,
        DomainKind::PolicyNotFound => Some(Site::new(&host, HttpBehaviour::Status(404))),
        _ => Some(Site::policy(&host, &policy)),
    }
}

/// The zone of the `index`-th domain.
fn zone(index: usize, fleets: usize, web: &[HttpsHandle]) -> Zone {
    let (d, kind) = (ManyDomains::domain(index), DomainKind::of(index));
    if kind == DomainKind::NxDomain {
        return Zone::new(&d).nxdomain("@");
    }
    let zone = Zone::new(&d)
        .mx(10, &mx_host(index, fleets))
        .address("mta-sts", web[fleet_of(index, fleets)].ip())
        .txt("_smtp._tls", &[&format!("v=TLSRPTv1; rua=mailto:tls@{d}")]);
    match kind {
        DomainKind::NoRecord => zone,
        DomainKind::RecordServFail => zone.servfail("_mta-sts"),
        _ => zone.txt("_mta-sts", &["v=STSv1; ", &format!("id={index}")]),
    }
}
