#!/usr/bin/env python3
# Build helper for the compiled-in Wayland protocol set (see meson.build).
#
#   plan   --scanner PATH --core XML --wayland-protocols DIR [--plasma DIR]
#          (configure time) Globs the XML, decides which files are compiled
#          and prints one tab-separated line per file:
#            keep    ORIGIN BASENAME PATH
#            filter  ORIGIN BASENAME PATH DROP1,DROP2  (needs a filtered copy)
#            skip    ORIGIN PATH REASON
#   filter IN OUT NAME[,NAME...]
#          (build time) Copies a protocol XML without the named interfaces.
#   table  OUT XML...
#          (build time) Writes the sorted interface-pointer array that
#          protocols.c searches.
#
# Rules of the plan:
# - Order of preference: core wayland.xml, wayland-protocols stable, staging,
#   unstable, then plasma-wayland-protocols; sorted by path within each.
#   The first file that declares an interface name owns it.
# - A file whose interfaces are all owned elsewhere is skipped.
# - A file where only some are owned elsewhere gets a filtered copy, unless one
#   of the dropped interfaces is used by the file's remaining interfaces and
#   its definition differs from the owner's (it would then bind to the wrong
#   messages): that file is skipped.
# - A file that uses an interface no compiled file declares is skipped; this
#   is repeated until nothing changes, since a skip can orphan other files.
# - Files wayland-scanner rejects, or that do not parse, are skipped.
# - The core file is never compiled here (libwayland exports its tables) but
#   its interfaces are owned and looked up like any other.

import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def messages(iface):
	return [m for m in iface if m.tag in ('request', 'event')]


def referenced(iface):
	return {a.get('interface') for m in messages(iface)
		for a in m.findall('arg') if a.get('interface')}


def wire_signature(iface):
	"""What matters on the wire: version and every message's arguments."""
	return (iface.get('version'), tuple(
		(m.tag, m.get('name'), m.get('since', '1'), tuple(
			(a.get('type'), a.get('interface'), a.get('allow-null', 'false'))
			for a in m.findall('arg')))
		for m in messages(iface)))


class Proto:
	def __init__(self, origin, path):
		self.origin = origin
		self.path = path
		self.base = os.path.splitext(os.path.basename(path))[0]
		self.ifaces = {}	# name -> element, in file order
		self.skip = None	# reason, when skipped
		self.drop = []		# interface names owned by other files

	def load(self):
		try:
			root = ET.parse(self.path).getroot()
		except (ET.ParseError, OSError) as e:
			self.skip = 'XML does not parse: {}'.format(e)
			return
		for i in root.findall('interface'):
			self.ifaces[i.get('name')] = i
		if not self.ifaces:
			self.skip = 'declares no interface'

	def check(self, scanner):
		# Every mode the build runs; a rejected file is skipped, not fatal.
		for mode in ('private-code', 'client-header', 'server-header'):
			r = subprocess.run([scanner, mode, self.path, os.devnull],
				stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
				universal_newlines=True)
			if r.returncode != 0:
				err = ' '.join(r.stderr.split())[:200]
				self.skip = 'wayland-scanner {} rejects it: {}'.format(mode, err)
				return


def find_xml(directory, subdirs):
	found = []
	for sub in subdirs:
		pattern = os.path.join(directory, sub, '**', '*.xml')
		found += sorted(glob.glob(pattern, recursive=True))
	return found


def plan(args):
	core = Proto('core', args.core)
	core.load()
	if core.skip:
		sys.exit('core protocol {}: {}'.format(args.core, core.skip))
	protos = [Proto('wayland-protocols', p) for p in
		find_xml(args.wayland_protocols, ('stable', 'staging', 'unstable'))]
	if args.plasma:
		protos += [Proto('plasma', p) for p in find_xml(args.plasma, ('',))]
	for p in protos:
		p.load()
	with concurrent.futures.ThreadPoolExecutor() as pool:
		list(pool.map(lambda p: p.check(args.scanner),
			[p for p in protos if p.skip is None]))

	bases = set()
	for p in protos:
		if p.skip is None and p.base in bases:
			p.skip = 'another compiled file is also named {}.xml'.format(p.base)
		elif p.skip is None:
			bases.add(p.base)

	while True:
		owner = {name: core for name in core.ifaces}
		for p in protos:
			if p.skip:
				continue
			p.drop = [n for n in p.ifaces if n in owner]
			for n in p.ifaces:
				owner.setdefault(n, p)
		changed = False
		for p in protos:
			if p.skip or not p.drop:
				continue
			kept = [n for n in p.ifaces if n not in p.drop]
			if not kept:
				p.skip = 'all interfaces already compiled from {}'.format(
					owner[p.drop[0]].path)
				changed = True
				continue
			used = set().union(*(referenced(p.ifaces[n]) for n in kept))
			for n in p.drop:
				other = owner[n].ifaces[n]
				if n in used and wire_signature(p.ifaces[n]) != wire_signature(other):
					p.skip = ('uses its own {} which differs from the one in {}'
						.format(n, owner[n].path))
					changed = True
					break
		for p in protos:
			if p.skip:
				continue
			kept = [n for n in p.ifaces if n not in p.drop]
			missing = set().union(*(referenced(p.ifaces[n]) for n in kept))
			missing -= set(owner)
			if missing:
				p.skip = 'uses interfaces nothing compiled declares: {}'.format(
					', '.join(sorted(missing)))
				changed = True
		if not changed:
			break

	for p in protos:
		if p.skip:
			print('skip\t{}\t{}\t{}'.format(p.origin, p.path, p.skip))
		elif p.drop:
			print('filter\t{}\t{}\t{}\t{}'.format(p.origin, p.base, p.path,
				','.join(p.drop)))
		else:
			print('keep\t{}\t{}\t{}'.format(p.origin, p.base, p.path))


def filter_xml(args):
	drop = set(args.names.split(','))
	tree = ET.parse(args.input)
	root = tree.getroot()
	for i in root.findall('interface'):
		if i.get('name') in drop:
			root.remove(i)
	tree.write(args.output, encoding='UTF-8', xml_declaration=True)


def destructor_mask(iface, kind):
	"""Bit n set when request (or event) n has type="destructor"."""
	mask = 0
	for opcode, msg in enumerate(iface.findall(kind)):
		if msg.get('type') == 'destructor':
			if opcode >= 64:
				sys.exit('{}: destructor past {} 63'.format(iface.get('name'), kind))
			mask |= 1 << opcode
	return mask


def table(args):
	ifaces = {}
	for path in args.xml:
		for i in ET.parse(path).getroot().findall('interface'):
			if i.get('name') in ifaces:
				sys.exit('interface {} declared twice'.format(i.get('name')))
			ifaces[i.get('name')] = (destructor_mask(i, 'request'), destructor_mask(i, 'event'))
	names = sorted(ifaces)
	with open(args.output, 'w') as out:
		out.write('/* Generated by protogen.py; included by protocols.c. */\n\n')
		for n in names:
			out.write('extern const struct wl_interface {}_interface;\n'.format(n))
		out.write('\n/* Sorted by name (strcmp order) for bsearch. */\n')
		out.write('static const struct wl_interface *const sml_protocols_table[] = {\n')
		for n in names:
			out.write('\t&{}_interface,\n'.format(n))
		out.write('};\n\n/* Destructor requests and events of each interface above, a bit per\n'
			  ' * opcode. */\n')
		out.write('static const struct sml_protocols_masks {\n\tuint64_t requests, events;\n'
			  '} sml_protocols_destructor_masks[] = {\n')
		for n in names:
			out.write('\t{{ 0x{:x}ull, 0x{:x}ull }}, /* {} */\n'.format(*ifaces[n], n))
		out.write('};\n')


def main():
	ap = argparse.ArgumentParser()
	sub = ap.add_subparsers(dest='cmd', required=True)
	p = sub.add_parser('plan')
	p.add_argument('--scanner', required=True)
	p.add_argument('--core', required=True)
	p.add_argument('--wayland-protocols', required=True)
	p.add_argument('--plasma', default='')
	p.set_defaults(func=plan)
	p = sub.add_parser('filter')
	p.add_argument('input')
	p.add_argument('output')
	p.add_argument('names')
	p.set_defaults(func=filter_xml)
	p = sub.add_parser('table')
	p.add_argument('output')
	p.add_argument('xml', nargs='+')
	p.set_defaults(func=table)
	args = ap.parse_args()
	args.func(args)


if __name__ == '__main__':
	main()
