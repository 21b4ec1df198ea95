//! Loading the XDP program, pinning its maps and link under the bpffs directory, attaching
//! it to an interface and detaching it again.
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader, VerifierLogLevel,
    maps::{Array, ArrayOfMaps, LpmTrie, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use xgslb_common::{Counter, LdnsKey, ListenerSet, Meta, Stats, map_names, prog_names};

use super::rrl::RrlMaps;
use super::tables::{ClassMaps, EcsMaps, Tables};

/// The XDP object built from `ebpf/`, embedded at build time (see build.rs).
pub static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xgslb.bpf.o"));

/// What went wrong loading, attaching or reading the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataPlaneError {
    /// The bpffs directory could not be created.
    #[error("cannot create the pin directory {path}: {source} (is bpffs mounted at /sys/fs/bpf?)")]
    PinDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another xgslbd holds the pin directory.
    #[error("the pin directory {path} is in use by another xgslbd (give this one its own pin_dir)")]
    PinDirInUse { path: PathBuf },
    /// The object did not load (maps, BTF).
    #[error("cannot load the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program or map is missing from the object, or has another type.
    #[error("the XDP object lacks {0}")]
    Missing(&'static str),
    /// The kernel refused the program (the verifier log follows) or the attachment.
    #[error("{what}: {source}")]
    Program {
        what: String,
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    /// The possible CPUs could not be counted for a per-CPU map write.
    #[error("{0}")]
    Cpus(String),
    /// Pinning or adopting the link failed.
    #[error("link pin {path}: {what}")]
    Link { path: PathBuf, what: String },
    /// The kernel refused an operation for want of capabilities this process lacks; the
    /// hint names them.
    #[error("{hint}: {source}")]
    Privilege {
        hint: String,
        source: Box<DataPlaneError>,
    },
}

impl DataPlaneError {
    /// `self`, with the capabilities `needs` lists and this process lacks named when the
    /// kernel refused it.
    fn or_privilege(self, needs: &crate::privileges::Needs) -> Self {
        match crate::privileges::hint(&self, needs) {
            Some(hint) => Self::Privilege {
                hint,
                source: Box::new(self),
            },
            None => self,
        }
    }
}

/// How to attach to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) mode; fail if the driver cannot.
    Native,
    /// Generic (skb) mode: slower, works on any interface.
    Generic,
    /// Native, else generic with a warning saying why.
    Auto,
}

/// The loaded program and its maps.
pub struct DataPlane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    /// The answer table, class table and class tries (map-in-map).
    pub tables: Tables,
    /// Listener address:port pairs.
    pub listeners: Array<MapData, ListenerSet>,
    /// The response rate limit's config and exempt prefixes.
    pub rrl: RrlMaps,
    stats: PerCpuArray<MapData, Stats>,
    pick: PerCpuArray<MapData, u32>,
    ldns: PerCpuHashMap<MapData, LdnsKey, u64>,
    ecs_stats: PerCpuArray<MapData, u64>,
    /// DNS cookies: the secret and clock the program uses, and its counters.
    pub cookies: super::cookies::CookieMaps,
    link: Option<LinkPin>,
}

/// The pinned link of the attachment: held when this process created it, or adopted (then
/// owned by the program, and detached when the program is dropped).
struct LinkPin {
    path: PathBuf,
    held: Option<PinnedLink>,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> DataPlaneError {
    move |source| DataPlaneError::Map { map, source }
}

impl DataPlane {
    /// Loads the embedded object with its maps pinned in (or adopted from) `pin_dir`, and
    /// loads the XDP program into the kernel (the verifier runs here).
    pub fn load(pin_dir: &Path) -> Result<Self, DataPlaneError> {
        use crate::privileges::{BPFFS_MOUNT, XDP_LOAD};
        ensure_bpffs(pin_dir).map_err(|e| e.or_privilege(&BPFFS_MOUNT))?;
        std::fs::create_dir_all(pin_dir).map_err(|source| DataPlaneError::PinDir {
            path: pin_dir.to_owned(),
            source,
        })?;
        Self::load_object(pin_dir).map_err(|e| e.or_privilege(&XDP_LOAD))
    }

    fn load_object(pin_dir: &Path) -> Result<Self, DataPlaneError> {
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(pin_dir);
        // BTF maps (the outer maps) carry no pinning attribute: pin them by path.
        let outer = [
            map_names::ENTRIES,
            map_names::CLASS_TRIE4,
            map_names::CLASS_TRIE6,
            map_names::CLASSES,
            map_names::ECS_TRIE4,
            map_names::ECS_TRIE6,
        ];
        for name in outer {
            loader.map_pin_path(name, pin_dir.join(name));
        }
        // XGSLB_VERIFIER_LOG=verbose: the full verifier log in load errors, for developers.
        if std::env::var_os("XGSLB_VERIFIER_LOG").is_some_and(|v| v == "verbose") {
            loader.verifier_log_level(VerifierLogLevel::VERBOSE | VerifierLogLevel::STATS);
        }
        let mut ebpf = loader.load(XDP_OBJECT)?;
        {
            let prog: &mut Xdp = ebpf
                .program_mut(prog_names::XGSLB)
                .ok_or(DataPlaneError::Missing(prog_names::XGSLB))?
                .try_into()
                .map_err(|source| DataPlaneError::Program {
                    what: "program type".into(),
                    source,
                })?;
            prog.load().map_err(|source| DataPlaneError::Program {
                what: "the kernel refused the XDP program".into(),
                source,
            })?;
        }
        let mut take =
            |name: &'static str| ebpf.take_map(name).ok_or(DataPlaneError::Missing(name));
        let tables = Tables::new(
            ArrayOfMaps::try_from(take(map_names::ENTRIES)?)
                .map_err(map_err(map_names::ENTRIES))?,
            Array::try_from(take(map_names::SEED)?).map_err(map_err(map_names::SEED))?,
            ClassMaps {
                trie4: ArrayOfMaps::try_from(take(map_names::CLASS_TRIE4)?)
                    .map_err(map_err(map_names::CLASS_TRIE4))?,
                trie6: ArrayOfMaps::try_from(take(map_names::CLASS_TRIE6)?)
                    .map_err(map_err(map_names::CLASS_TRIE6))?,
                table: ArrayOfMaps::try_from(take(map_names::CLASSES)?)
                    .map_err(map_err(map_names::CLASSES))?,
                lengths: Array::try_from(take(map_names::CLASS_LENGTHS)?)
                    .map_err(map_err(map_names::CLASS_LENGTHS))?,
            },
            EcsMaps {
                trie4: ArrayOfMaps::try_from(take(map_names::ECS_TRIE4)?)
                    .map_err(map_err(map_names::ECS_TRIE4))?,
                trie6: ArrayOfMaps::try_from(take(map_names::ECS_TRIE6)?)
                    .map_err(map_err(map_names::ECS_TRIE6))?,
                config: Array::try_from(take(map_names::ECS_CONFIG)?)
                    .map_err(map_err(map_names::ECS_CONFIG))?,
            },
            Array::try_from(take(map_names::META)?).map_err(map_err(map_names::META))?,
        );
        let listeners =
            Array::try_from(take(map_names::LISTENERS)?).map_err(map_err(map_names::LISTENERS))?;
        let stats =
            PerCpuArray::try_from(take(map_names::STATS)?).map_err(map_err(map_names::STATS))?;
        let pick =
            PerCpuArray::try_from(take(map_names::PICK)?).map_err(map_err(map_names::PICK))?;
        let ldns =
            PerCpuHashMap::try_from(take(map_names::LDNS)?).map_err(map_err(map_names::LDNS))?;
        let ecs_stats = PerCpuArray::try_from(take(map_names::ECS_STATS)?)
            .map_err(map_err(map_names::ECS_STATS))?;
        let rrl = RrlMaps {
            config: Array::try_from(take(map_names::RRL_CONFIG)?)
                .map_err(map_err(map_names::RRL_CONFIG))?,
            exempt4: LpmTrie::try_from(take(map_names::RRL_EXEMPT4)?)
                .map_err(map_err(map_names::RRL_EXEMPT4))?,
            exempt6: LpmTrie::try_from(take(map_names::RRL_EXEMPT6)?)
                .map_err(map_err(map_names::RRL_EXEMPT6))?,
        };
        let cookies = super::cookies::CookieMaps::new(
            Array::try_from(take(map_names::COOKIE)?).map_err(map_err(map_names::COOKIE))?,
            PerCpuArray::try_from(take(map_names::COOKIE_STATS)?)
                .map_err(map_err(map_names::COOKIE_STATS))?,
        );
        Ok(Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            tables,
            listeners,
            rrl,
            stats,
            pick,
            ldns,
            ecs_stats,
            cookies,
            link: None,
        })
    }

    /// The answering program, for attaching or BPF_PROG_TEST_RUN.
    pub fn program(&mut self) -> &mut Xdp {
        self.xdp_program(prog_names::XGSLB)
            .expect("checked at load: the program exists and is XDP")
    }

    /// Loads the bench-only reflector program from the same object and returns it.
    pub fn reflector(&mut self) -> Result<&mut Xdp, DataPlaneError> {
        self.loaded_program(prog_names::REFLECTOR)
    }

    /// Attaches the XDP_PASS program to `iface` (native mode) until this `DataPlane` drops.
    /// Test and demo topologies put it on the client end of a veth pair: veth hands frames
    /// that its peer sends with XDP_TX only to a receive side running NAPI, which an XDP
    /// program turns on.
    pub fn attach_pass(&mut self, iface: &str) -> Result<(), DataPlaneError> {
        self.loaded_program(prog_names::PASS)?
            .attach(iface, XdpMode::Driver)
            .map_err(|source| DataPlaneError::Program {
                what: format!("attach {} to {iface}", prog_names::PASS),
                source,
            })?;
        Ok(())
    }

    /// Attaches the XDP_PASS program to `iface` and pins its link at `link_pin`, so that it
    /// stays attached after this process exits (remove the pin to detach it). For the client
    /// end of veth topologies run from scripts (see `attach_pass`).
    pub fn attach_pass_pinned(iface: &str, link_pin: &Path) -> Result<(), DataPlaneError> {
        Self::attach_helper_pinned(prog_names::PASS, iface, link_pin)
    }

    /// Attaches the bench-only reflector (`xgslb_reflector`: every IPv4 UDP frame to port 53
    /// goes back with addresses and ports swapped and QR set) to `iface` in native mode and
    /// pins its link at `link_pin`, so that it stays attached after this process exits
    /// (remove the pin to detach it). The load bench's ceiling on the server end of its veth.
    pub fn attach_reflector_pinned(iface: &str, link_pin: &Path) -> Result<(), DataPlaneError> {
        Self::attach_helper_pinned(prog_names::REFLECTOR, iface, link_pin)
    }

    /// Loads the object, attaches its program `name` to `iface` natively and pins the link at
    /// `link_pin`. The object's maps are pinned in a temporary directory for the load only:
    /// the attached program keeps them alive.
    fn attach_helper_pinned(
        name: &'static str,
        iface: &str,
        link_pin: &Path,
    ) -> Result<(), DataPlaneError> {
        let tmp = PathBuf::from(format!(
            "/sys/fs/bpf/xgslb-{name}-tmp-{}",
            std::process::id()
        ));
        let result = (|| {
            let mut dp = DataPlane::load(&tmp)?;
            let prog = dp.loaded_program(name)?;
            attach_and_pin(prog, name, iface, XdpMode::Driver, link_pin)?;
            dp.unpin_all();
            Ok(())
        })();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&tmp);
        result
    }

    /// The object's XDP program `name`, loaded into the kernel if it is not yet.
    fn loaded_program(&mut self, name: &'static str) -> Result<&mut Xdp, DataPlaneError> {
        let prog = self
            .xdp_program(name)
            .ok_or(DataPlaneError::Missing(name))?;
        if prog.fd().is_err() {
            prog.load().map_err(|source| DataPlaneError::Program {
                what: format!("the kernel refused {name}"),
                source,
            })?;
        }
        Ok(prog)
    }

    fn xdp_program(&mut self, name: &str) -> Option<&mut Xdp> {
        self.ebpf.program_mut(name)?.try_into().ok()
    }

    fn link_pin_path(&self, iface: &str) -> PathBuf {
        link_pin(&self.pin_dir, iface)
    }

    /// Attaches to `iface` and pins the link so that the program keeps serving if xgslbd
    /// exits without detaching. A link pinned by an earlier xgslbd is adopted: its program is
    /// replaced atomically, so answers never stop during an upgrade. Returns the mode used.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<XdpMode, DataPlaneError> {
        self.attach_or_adopt(iface, mode)
            .map_err(|e| e.or_privilege(&crate::privileges::XDP_ATTACH))
    }

    fn attach_or_adopt(
        &mut self,
        iface: &str,
        mode: AttachMode,
    ) -> Result<XdpMode, DataPlaneError> {
        let pin = self.link_pin_path(iface);
        if pin.exists() {
            match self.adopt_link(iface, pin.clone()) {
                Ok(mode) => return Ok(mode),
                // A link detached behind the pin (another xgslbd found its program frozen
                // and detached it) can take no program: attach afresh in its place.
                Err(e) if link_is_detached(&e) => {
                    tracing::warn!(
                        "the pinned XDP link on {iface} was detached ({e}); attaching afresh"
                    );
                    std::fs::remove_file(&pin).map_err(|e| DataPlaneError::Link {
                        path: pin.clone(),
                        what: format!("remove the pin of a detached link: {e}"),
                    })?;
                }
                Err(e) => return Err(e),
            }
        }
        let used = match mode {
            AttachMode::Native => self.attach_mode(iface, XdpMode::Driver)?,
            AttachMode::Generic => self.attach_mode(iface, XdpMode::Skb)?,
            AttachMode::Auto => match self.attach_mode(iface, XdpMode::Driver) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        "native XDP attach to {iface} failed ({e}); falling back to generic \
                         (skb) mode, which copies every frame and is much slower"
                    );
                    self.attach_mode(iface, XdpMode::Skb)?
                }
            },
        };
        Ok(used)
    }

    fn attach_mode(&mut self, iface: &str, mode: XdpMode) -> Result<XdpMode, DataPlaneError> {
        let path = self.link_pin_path(iface);
        let pinned = attach_and_pin(self.program(), prog_names::XGSLB, iface, mode, &path)?;
        self.link = Some(LinkPin {
            path,
            held: Some(pinned),
        });
        Ok(mode)
    }

    fn adopt_link(&mut self, iface: &str, path: PathBuf) -> Result<XdpMode, DataPlaneError> {
        let link_err = |what: String| DataPlaneError::Link {
            path: path.clone(),
            what,
        };
        let pinned = PinnedLink::from_pin(&path).map_err(|e| link_err(e.to_string()))?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| link_err(e.to_string()))?;
        self.program()
            .attach_to_link(link)
            .map_err(|source| DataPlaneError::Program {
                what: format!("replace the program of the pinned link on {iface}"),
                source,
            })?;
        tracing::info!("adopted the pinned XDP link on {iface}");
        self.link = Some(LinkPin { path, held: None });
        Ok(XdpMode::Default)
    }

    /// Sums the per-CPU counters.
    pub fn stats(&self) -> Result<[u64; Counter::COUNT], DataPlaneError> {
        read_stats(&self.stats)
    }

    /// ECS queries answered by the program, by `xgslb_common::ecs_stat_index`, summed over
    /// CPUs.
    pub fn ecs_stats(&self) -> Result<Vec<u64>, DataPlaneError> {
        read_ecs_stats(&self.ecs_stats)
    }

    /// The sampled query counts by (LDNS address, class) since the last call, summed over
    /// CPUs; the map is emptied so that the next call counts a new period.
    pub fn take_ldns_samples(&mut self) -> Result<Vec<(LdnsKey, u64)>, DataPlaneError> {
        let mut out = Vec::new();
        for entry in self.ldns.iter() {
            let (key, per_cpu) = entry.map_err(map_err(map_names::LDNS))?;
            out.push((key, per_cpu.iter().sum()));
        }
        for (key, _) in &out {
            // Evicted or deleted meanwhile: nothing to clear.
            let _ = self.ldns.remove(key);
        }
        Ok(out)
    }

    /// Sets every CPU's pick counter (tests use it to make picks predictable).
    pub fn set_pick_counter(&mut self, value: u32) -> Result<(), DataPlaneError> {
        let n = aya::util::nr_cpus()
            .map_err(|(_, e)| DataPlaneError::Cpus(format!("cannot count CPUs: {e}")))?;
        let values = PerCpuValues::try_from(vec![value; n])
            .map_err(|e| DataPlaneError::Cpus(format!("per-CPU values: {e}")))?;
        self.pick
            .set(0, values, 0)
            .map_err(map_err(map_names::PICK))
    }

    /// Removes the link pin and every map pin: the program stops answering when this
    /// process exits (or at once if `self` is dropped).
    pub fn unpin_all(&mut self) {
        if let Some(link) = self.link.take() {
            match link.held {
                // Unpinning hands back the link; dropping it detaches the program.
                Some(pinned) => drop(pinned.unpin()),
                None => drop(std::fs::remove_file(&link.path)),
            }
        }
        remove_map_pins(&self.pin_dir);
    }
}

/// Attaches `prog` (named `name`) to `iface` in `mode` and pins the link at `path`; the
/// returned pin owns the link (drop it after unpinning to detach).
fn attach_and_pin(
    prog: &mut Xdp,
    name: &str,
    iface: &str,
    mode: XdpMode,
    path: &Path,
) -> Result<PinnedLink, DataPlaneError> {
    let id = prog
        .attach(iface, mode)
        .map_err(|source| DataPlaneError::Program {
            what: format!("attach {name} to {iface} in {mode:?} mode"),
            source,
        })?;
    let link = prog
        .take_link(id)
        .map_err(|source| DataPlaneError::Program {
            what: "take link".into(),
            source,
        })?;
    let link_err = |what: String| DataPlaneError::Link {
        path: path.to_owned(),
        what,
    };
    FdLink::try_from(link)
        .map_err(|e| link_err(format!("the kernel gave no bpf_link to pin: {e}")))?
        .pin(path)
        .map_err(|e| link_err(e.to_string()))
}

/// Whether `e` says the link is detached (ENOLINK: a link update after `BPF_LINK_DETACH`).
fn link_is_detached(e: &DataPlaneError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOLINK))
        {
            return true;
        }
        source = err.source();
    }
    false
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts bpffs on the parent of `pin_dir` (normally /sys/fs/bpf) when it is not mounted yet,
/// as systemd does at boot; minimal machines and fresh containers lack it.
fn ensure_bpffs(pin_dir: &Path) -> Result<(), DataPlaneError> {
    // A pin directory bound in from a bpffs elsewhere (systemd's BindPaths=) is one.
    if on_bpffs(pin_dir) {
        return Ok(());
    }
    let Some(root) = pin_dir.parent() else {
        return Ok(());
    };
    let err = |source| DataPlaneError::PinDir {
        path: root.to_owned(),
        source,
    };
    let c_root = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
        .map_err(|e| err(std::io::Error::other(e)))?;
    if on_bpffs(root) {
        return Ok(());
    }
    std::fs::create_dir_all(root).map_err(err)?;
    let fstype = c"bpf";
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c_root.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    tracing::info!("mounted bpffs on {}", root.display());
    Ok(())
}

/// Whether `path` exists on a bpffs.
fn on_bpffs(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Reads and sums the per-CPU counters of a stats map.
pub fn read_stats(
    map: &PerCpuArray<MapData, Stats>,
) -> Result<[u64; Counter::COUNT], DataPlaneError> {
    let per_cpu = map.get(&0, 0).map_err(map_err(map_names::STATS))?;
    let mut sum = [0u64; Counter::COUNT];
    for cpu in per_cpu.iter() {
        for (s, v) in sum.iter_mut().zip(cpu.counters.iter()) {
            *s += v;
        }
    }
    Ok(sum)
}

/// Reads the counters from the stats map pinned in `pin_dir` by a running xgslbd.
pub fn read_pinned_stats(pin_dir: &Path) -> Result<[u64; Counter::COUNT], DataPlaneError> {
    let data =
        MapData::from_pin(pin_dir.join(map_names::STATS)).map_err(map_err(map_names::STATS))?;
    let map = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
        .map_err(map_err(map_names::STATS))?;
    read_stats(&map)
}

/// Where the link of the attachment to `iface` is pinned.
fn link_pin(pin_dir: &Path, iface: &str) -> PathBuf {
    pin_dir.join(format!("link_{iface}"))
}

/// The id of the program behind the XDP link xgslbd pinned for `iface` in `pin_dir`, or `None`
/// when there is no such pin (never attached there, or detached and unpinned).
pub fn pinned_link_program(pin_dir: &Path, iface: &str) -> Option<u32> {
    let link = PinnedLink::from_pin(link_pin(pin_dir, iface)).ok()?;
    FdLink::from(link).info().ok().map(|i| i.program_id())
}

/// Reads the publication facts from the meta map pinned in `pin_dir` by a running xgslbd.
pub fn read_pinned_meta(pin_dir: &Path) -> Result<Meta, DataPlaneError> {
    let data =
        MapData::from_pin(pin_dir.join(map_names::META)).map_err(map_err(map_names::META))?;
    let map: Array<MapData, Meta> =
        Array::try_from(aya::maps::Map::Array(data)).map_err(map_err(map_names::META))?;
    map.get(&0, 0).map_err(map_err(map_names::META))
}

/// Removes what an earlier xgslbd (one killed, or stopped with `--leave-serving`) left in
/// `pin_dir` that this one will not take over, and says what, for the logs and `status`:
/// - the pinned link of every interface but `keep` (removing the last reference to a link
///   detaches its program, which would otherwise answer from maps nobody updates);
/// - with `maps`, the pinned maps and the directory too (`xdp_mode = "off"`: nothing of the
///   data plane is wanted).
///
/// The caller holds the pin directory's lock: no live xgslbd owns these pins.
pub fn remove_leftovers(pin_dir: &Path, keep: Option<&str>, maps: bool) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(pin_dir) else {
        return done;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(iface) = name.strip_prefix("link_") else {
            continue;
        };
        if Some(iface) == keep {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => done.push(format!(
                "detached the XDP program an earlier xgslbd left attached to {iface} \
                 (pinned in {})",
                pin_dir.display()
            )),
            Err(e) => done.push(format!(
                "cannot remove the link pin {} an earlier xgslbd left: {e}",
                entry.path().display()
            )),
        }
    }
    if maps {
        let removed = remove_map_pins(pin_dir);
        if removed > 0 {
            done.push(format!(
                "removed {removed} maps an earlier xgslbd left pinned in {}",
                pin_dir.display()
            ));
        }
    }
    done
}

/// Removes every map pin in `pin_dir`, then the directory if that left it empty; says how
/// many maps were pinned. Every map is tried, pinned or not (the scratch never is: its
/// removal fails, unseen).
fn remove_map_pins(pin_dir: &Path) -> usize {
    let removed = map_names::ALL
        .iter()
        .filter(|name| std::fs::remove_file(pin_dir.join(name)).is_ok())
        .count();
    let _ = std::fs::remove_dir(pin_dir);
    removed
}

/// Takes an exclusive lock on the pin directory `path` (created if need be) for as long as
/// the returned file is open: two xgslbd on one pin directory would write each other's maps.
/// The lock goes with the process, however it ends.
pub fn lock_pin_dir(path: &Path) -> Result<std::fs::File, DataPlaneError> {
    use std::os::fd::AsRawFd;
    let pin_err = |source| DataPlaneError::PinDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(pin_err)?;
    let dir = std::fs::File::open(path).map_err(pin_err)?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            DataPlaneError::PinDirInUse {
                path: path.to_owned(),
            }
        } else {
            pin_err(e)
        });
    }
    Ok(dir)
}

/// The counter maps pinned by a running xgslbd, opened once and kept (what `/metrics` reads at
/// every scrape, without reopening the pins or reading the unused answer slots).
pub struct PinnedCounters {
    stats: PerCpuArray<MapData, Stats>,
    answers: PerCpuArray<MapData, u64>,
    ecs: PerCpuArray<MapData, u64>,
    cookies: PerCpuArray<MapData, u64>,
}

/// The ECS counters of `map`, summed over CPUs.
fn read_ecs_stats(map: &PerCpuArray<MapData, u64>) -> Result<Vec<u64>, DataPlaneError> {
    (0..xgslb_common::ECS_STATS_LEN)
        .map(|i| {
            map.get(&i, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .map_err(map_err(map_names::ECS_STATS))
        })
        .collect()
}

impl PinnedCounters {
    /// Opens the stats and answer-counter maps pinned in `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<Self, DataPlaneError> {
        let open =
            |name: &'static str| MapData::from_pin(pin_dir.join(name)).map_err(map_err(name));
        let stats = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(open(map_names::STATS)?))
            .map_err(map_err(map_names::STATS))?;
        let answers = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(open(map_names::ANSWERS)?))
            .map_err(map_err(map_names::ANSWERS))?;
        let ecs = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(open(map_names::ECS_STATS)?))
            .map_err(map_err(map_names::ECS_STATS))?;
        let cookies =
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(open(map_names::COOKIE_STATS)?))
                .map_err(map_err(map_names::COOKIE_STATS))?;
        Ok(Self {
            stats,
            answers,
            ecs,
            cookies,
        })
    }

    /// The XDP program's answers to queries with a cookie, by `xgslb_common::CookieSeen`.
    pub fn cookie_stats(
        &self,
    ) -> Result<[u64; xgslb_common::COOKIE_STATS_LEN as usize], DataPlaneError> {
        super::cookies::read_stats(&self.cookies).map_err(map_err(map_names::COOKIE_STATS))
    }

    /// The XDP program's answers to client subnets, by `xgslb_common::ecs_stat_index`.
    pub fn ecs_stats(&self) -> Result<Vec<u64>, DataPlaneError> {
        read_ecs_stats(&self.ecs)
    }

    /// The XDP counters, summed over CPUs.
    pub fn stats(&self) -> Result<[u64; Counter::COUNT], DataPlaneError> {
        read_stats(&self.stats)
    }

    /// Answer counter `index` (`stat * MAX_ADDRS + leading address`), summed over CPUs.
    pub fn answer_count(&self, index: u32) -> Result<u64, DataPlaneError> {
        let per_cpu = self
            .answers
            .get(&index, 0)
            .map_err(map_err(map_names::ANSWERS))?;
        Ok(per_cpu.iter().sum())
    }
}
