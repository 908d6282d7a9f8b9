"""The lab hosts' libvirtds share what one of them learnt of QEMU (sdnvirt.lab.libvirtd)."""

from __future__ import annotations

from sdnvirt.lab.libvirtd import _copy_capabilities


def test_the_files_are_copied_whole_and_private_and_replace_older_ones(tmp_path):
    shared, host = tmp_path / "shared", tmp_path / "hv1" / "cache" / "qemu" / "capabilities"
    shared.mkdir()
    (shared / "a.xml").write_text("<qemuCaps>new</qemuCaps>")
    (shared / "notes.txt").write_text("not libvirt's")
    host.mkdir(parents=True)
    (host / "a.xml").write_text("<qemuCaps>old</qemuCaps>")
    _copy_capabilities(shared, host)
    assert sorted(p.name for p in host.iterdir()) == ["a.xml"]  # no partial copy left behind
    assert (host / "a.xml").read_text() == "<qemuCaps>new</qemuCaps>"
    assert (host / "a.xml").stat().st_mode & 0o777 == 0o600


def test_a_cache_that_is_missing_or_cannot_be_written_only_costs_a_probe(tmp_path):
    _copy_capabilities(tmp_path / "never-made", tmp_path / "host")  # the first lab of a machine
    assert list((tmp_path / "host").iterdir()) == []
    (tmp_path / "file").write_text("")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "a.xml").write_text("<qemuCaps/>")
    _copy_capabilities(tmp_path / "shared", tmp_path / "file" / "below")  # a file where a folder must be
