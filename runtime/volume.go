package runtime

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Volume is one pod volume: exactly one source is set.
type Volume struct {
	Name        string
	EmptyDir    *EmptyDirVolume    `json:",omitempty"`
	HostPath    *HostPathVolume    `json:",omitempty"`
	ConfigMap   *ObjectVolume      `json:",omitempty"`
	Secret      *ObjectVolume      `json:",omitempty"`
	DownwardAPI *DownwardAPIVolume `json:",omitempty"`
	Local       *LocalVolume       `json:",omitempty"`
}

// EmptyDirVolume is a directory that lives as long as the pod: on disk
// under the pod's directory, or on a tmpfs when Memory is set.
type EmptyDirVolume struct {
	Memory bool
	// SizeLimit in bytes; 0 means none. It is the tmpfs size for a Memory
	// volume; a disk volume's limit is not enforced (FromPod refuses it).
	SizeLimit int64
}

// HostPathVolume is a path on the node, checked (and for the *OrCreate
// types, created) as Kubernetes does before the pod starts.
type HostPathVolume struct {
	Path string
	Type corev1.HostPathType
}

// ObjectVolume projects a ConfigMap's or Secret's keys as files. A Secret
// volume is always on a tmpfs; a ConfigMap volume is on disk.
type ObjectVolume struct {
	// Name of the ConfigMap or Secret, in the pod's namespace.
	Name string
	// Items selects keys and names their files; empty means every key,
	// each as a file named by the key.
	Items []KeyToPath
	// DefaultMode is the files' mode (0644 unless set).
	DefaultMode int32
	// Optional: a missing object (or item key) is not an error.
	Optional bool
}

// KeyToPath maps one key to a relative file path.
type KeyToPath struct {
	Key  string
	Path string
	Mode *int32 `json:",omitempty"`
}

// DownwardAPIVolume projects pod fields as files.
type DownwardAPIVolume struct {
	Items       []DownwardAPIFile
	DefaultMode int32
}

// DownwardAPIFile is one file of a downward API volume: a field of the
// pod's metadata, or a resource of a container.
type DownwardAPIFile struct {
	Path      string
	FieldPath string       `json:",omitempty"`
	Resource  *ResourceRef `json:",omitempty"`
	Mode      *int32       `json:",omitempty"`
}

// LocalVolume is a node-local persistent volume: a directory under
// DataDir/volumes/local/NAMESPACE/CLAIM that outlives the pod, so a pod
// that uses the same claim again (a StatefulSet's pod) finds its data.
// DeleteLocalVolume removes it. A claim the pod's annotation
// AnnotationFreshClaims lists gets a new, empty volume instead (see
// setupLocalVolume).
type LocalVolume struct {
	Claim string
}

// AnnotationFreshClaims lists, comma-separated, the pod's claims that must
// get a new, empty volume: the leader had no volume record of them when it
// created the pod (state.PodSpec.FreshClaims). The node agent sets it from
// the pod record, replacing whatever a manifest says.
const AnnotationFreshClaims = "shoal.dev/fresh-claims"

// FreshClaim reports whether annotations (a pod's) list claim in
// AnnotationFreshClaims.
func FreshClaim(annotations map[string]string, claim string) bool {
	for _, c := range strings.Split(annotations[AnnotationFreshClaims], ",") {
		if c == claim {
			return true
		}
	}
	return false
}

// Mount is a container's volumeMount.
type Mount struct {
	Volume string
	// Path is where the volume appears in the container.
	Path string
	// SubPath, when set, mounts that path inside the volume instead of
	// its root (created as a directory if missing, for writable volumes).
	SubPath  string
	ReadOnly bool
}

// ResourceRef selects a container's resource for the downward API:
// limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu,
// requests.memory or requests.ephemeral-storage, divided by Divisor and
// rounded up.
type ResourceRef struct {
	Container string
	Resource  string
	Divisor   resource.Quantity
}

// volumesFrom converts the pod's volumes; unsupported parts are reported
// through no.
func volumesFrom(vols []corev1.Volume, no func(string)) ([]Volume, error) {
	var out []Volume
	seen := map[string]bool{}
	for i, v := range vols {
		p := fmt.Sprintf("spec.volumes[%d]", i)
		if !validUID(v.Name) || seen[v.Name] {
			return nil, fmt.Errorf("%s.name %q is repeated or not 1-64 characters of [A-Za-z0-9._-]", p, v.Name)
		}
		seen[v.Name] = true
		vol := Volume{Name: v.Name}
		s := v.VolumeSource
		switch {
		case s.EmptyDir != nil:
			vol.EmptyDir = &EmptyDirVolume{}
			switch s.EmptyDir.Medium {
			case corev1.StorageMediumDefault:
				if s.EmptyDir.SizeLimit != nil {
					// Not enforced on disk: refuse rather than ignore.
					no(p + ".emptyDir.sizeLimit (only with medium: Memory)")
				}
			case corev1.StorageMediumMemory:
				vol.EmptyDir.Memory = true
				if s.EmptyDir.SizeLimit != nil {
					vol.EmptyDir.SizeLimit = s.EmptyDir.SizeLimit.Value()
					if vol.EmptyDir.SizeLimit <= 0 {
						return nil, fmt.Errorf("%s.emptyDir.sizeLimit must be positive", p)
					}
				}
			default:
				no(fmt.Sprintf("%s.emptyDir.medium (%s)", p, s.EmptyDir.Medium))
			}
		case s.HostPath != nil:
			t := corev1.HostPathUnset
			if s.HostPath.Type != nil {
				t = *s.HostPath.Type
			}
			switch t {
			case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
				corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
			default:
				return nil, fmt.Errorf("%s.hostPath.type %q is not a host path type", p, t)
			}
			if !path.IsAbs(s.HostPath.Path) {
				return nil, fmt.Errorf("%s.hostPath.path %q must be absolute", p, s.HostPath.Path)
			}
			vol.HostPath = &HostPathVolume{Path: path.Clean(s.HostPath.Path), Type: t}
		case s.ConfigMap != nil:
			ov, err := objectVolume(p+".configMap", s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.DefaultMode, s.ConfigMap.Optional)
			if err != nil {
				return nil, err
			}
			vol.ConfigMap = ov
		case s.Secret != nil:
			ov, err := objectVolume(p+".secret", s.Secret.SecretName, s.Secret.Items, s.Secret.DefaultMode, s.Secret.Optional)
			if err != nil {
				return nil, err
			}
			vol.Secret = ov
		case s.DownwardAPI != nil:
			d := &DownwardAPIVolume{DefaultMode: 0o644}
			if s.DownwardAPI.DefaultMode != nil {
				d.DefaultMode = *s.DownwardAPI.DefaultMode
			}
			for j, it := range s.DownwardAPI.Items {
				ip := fmt.Sprintf("%s.downwardAPI.items[%d]", p, j)
				if err := checkRelPath(ip+".path", it.Path); err != nil {
					return nil, err
				}
				f := DownwardAPIFile{Path: it.Path, Mode: it.Mode}
				switch {
				case it.FieldRef != nil && it.ResourceFieldRef == nil:
					if !volumeFieldPath(it.FieldRef.FieldPath) {
						return nil, fmt.Errorf("%s.fieldRef.fieldPath %q: a volume can show metadata.name, metadata.namespace, metadata.uid, metadata.labels and metadata.annotations", ip, it.FieldRef.FieldPath)
					}
					f.FieldPath = it.FieldRef.FieldPath
				case it.ResourceFieldRef != nil && it.FieldRef == nil:
					if it.ResourceFieldRef.ContainerName == "" {
						return nil, fmt.Errorf("%s.resourceFieldRef.containerName is required in a volume", ip)
					}
					r, err := resourceRef(ip+".resourceFieldRef", it.ResourceFieldRef)
					if err != nil {
						return nil, err
					}
					f.Resource = r
				default:
					return nil, fmt.Errorf("%s must have exactly one of fieldRef, resourceFieldRef", ip)
				}
				d.Items = append(d.Items, f)
			}
			vol.DownwardAPI = d
		case s.PersistentVolumeClaim != nil:
			claim := s.PersistentVolumeClaim.ClaimName
			if !validUID(claim) {
				return nil, fmt.Errorf("%s.persistentVolumeClaim.claimName %q must be 1-64 characters of [A-Za-z0-9._-]", p, claim)
			}
			if s.PersistentVolumeClaim.ReadOnly {
				no(p + ".persistentVolumeClaim.readOnly (use readOnly on the volumeMount)")
			}
			vol.Local = &LocalVolume{Claim: claim}
		default:
			no(p + " (" + volumeKind(s) + ")")
		}
		out = append(out, vol)
	}
	return out, nil
}

func objectVolume(p, name string, items []corev1.KeyToPath, mode *int32, optional *bool) (*ObjectVolume, error) {
	if name == "" {
		return nil, fmt.Errorf("%s names no object", p)
	}
	ov := &ObjectVolume{Name: name, DefaultMode: 0o644, Optional: optional != nil && *optional}
	if mode != nil {
		ov.DefaultMode = *mode
	}
	for j, it := range items {
		if it.Key == "" {
			return nil, fmt.Errorf("%s.items[%d].key is empty", p, j)
		}
		if err := checkRelPath(fmt.Sprintf("%s.items[%d].path", p, j), it.Path); err != nil {
			return nil, err
		}
		ov.Items = append(ov.Items, KeyToPath{Key: it.Key, Path: it.Path, Mode: it.Mode})
	}
	return ov, nil
}

// checkRelPath accepts a relative path with no ".." element, as
// Kubernetes requires of projected files and subPaths.
func checkRelPath(field, p string) error {
	if p == "" || path.IsAbs(p) {
		return fmt.Errorf("%s %q must be a relative path", field, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("%s %q must not contain '..'", field, p)
		}
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("%s %q must not start with '..'", field, p)
	}
	return nil
}

func volumeKind(s corev1.VolumeSource) string {
	switch {
	case s.Projected != nil:
		return "projected"
	case s.NFS != nil:
		return "nfs"
	case s.CSI != nil:
		return "csi"
	case s.Ephemeral != nil:
		return "ephemeral"
	case s.Image != nil:
		return "image"
	}
	return "this volume type"
}

func resourceRef(p string, r *corev1.ResourceFieldSelector) (*ResourceRef, error) {
	switch r.Resource {
	case "limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage":
	default:
		return nil, fmt.Errorf("%s.resource %q is not supported (limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage)", p, r.Resource)
	}
	out := &ResourceRef{Container: r.ContainerName, Resource: r.Resource, Divisor: r.Divisor}
	if out.Divisor.IsZero() {
		out.Divisor = resource.MustParse("1")
	}
	return out, nil
}

// mountsFrom converts a container's volumeMounts.
func mountsFrom(p string, c corev1.Container, vols []Volume, no func(string)) ([]Mount, error) {
	byName := map[string]bool{}
	for _, v := range vols {
		byName[v.Name] = true
	}
	var out []Mount
	for j, m := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, j)
		if !byName[m.Name] {
			return nil, fmt.Errorf("%s.name %q is not a volume of the pod", mp, m.Name)
		}
		if !path.IsAbs(m.MountPath) {
			return nil, fmt.Errorf("%s.mountPath %q must be absolute", mp, m.MountPath)
		}
		if m.SubPath != "" {
			if err := checkRelPath(mp+".subPath", m.SubPath); err != nil {
				return nil, err
			}
		}
		if m.SubPathExpr != "" {
			no(mp + ".subPathExpr")
		}
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			no(mp + ".mountPropagation")
		}
		if m.RecursiveReadOnly != nil && *m.RecursiveReadOnly != corev1.RecursiveReadOnlyDisabled {
			no(mp + ".recursiveReadOnly")
		}
		out = append(out, Mount{Volume: m.Name, Path: path.Clean(m.MountPath), SubPath: m.SubPath, ReadOnly: m.ReadOnly})
	}
	return out, nil
}
