#!/usr/bin/env python3
"""Reference implementation of RingChecksum (common/transport/ring_checksum.h),
straight from its definition; prints the values ring_checksum_test pins.

Usage: python3 tools/ring/ring_checksum_reference.py
"""
M=(1<<64)-1
K=[0x1D52490575FFC53D,0xE2A214E8BBE9C675,0x186C39E8C7BB69F7,0x03AA3897FCF4C6B7,0x64D4748CA3C77EBF,0x5C22C46963E968FD,0x8C656018EEE38DC1,0xB2609A0BDD2B7551]
S=[0x3B9BE05D0E8E2329,0x5BD0F521BE84762B,0xA4E0689E1888DF21,0x7EA3EF27E2E90529,0x7B81E5E0309E6043,0x5C3981A844AB26D9,0x99BA695AB78D8387,0x0BCC0D1CD5A93145]
I=[0x1F95E90587134BE1,0xE08137F33A087EC9,0x694472D1A7D32947,0x6B8816776B5ACB73,0x56DFD21E9D1F5C01,0xC9CE5DDC2A52183F,0xA98647FE161B80DF,0xF41FAE4A5518983D]
P1=0x9E3779B185EBCA87;P2=0xC2B2AE3D27D4EB4F;SEED=0x27D4EB2F165667C5
def rotl(v,r): return ((v<<r)|(v>>(64-r)))&M
def fmix(h):
  h^=h>>33; h=(h*0xFF51AFD7ED558CCD)&M; h^=h>>33; h=(h*0xC4CEB9FE1A85EC53)&M; h^=h>>33; return h
def rc(b):
  acc=list(I); n=len(b); pad=b+bytes((-n)%64)
  for s in range(len(pad)//64):
    for i in range(8):
      w=int.from_bytes(pad[64*s+8*i:64*s+8*i+8],'little'); k=(K[i]+s*S[i])&M; x=w^k
      acc[i]=(acc[i]+(x&0xffffffff)*(x>>32))&M; acc[i^1]=(acc[i^1]+w)&M
  h=(n*P1+SEED)&M
  for i in range(8): h=rotl(((h^acc[i])*P2)&M,31)
  return fmix(h)
def crc32c(b):
  c=0xFFFFFFFF
  for x in b:
    c^=x
    for _ in range(8): c=(c>>1)^(0x82F63B78 if c&1 else 0)
  return c^0xFFFFFFFF
def ring_checksum(b):
  # RingChecksum: CRC32C tagged below 256 bytes, the hash from 256.
  if len(b)<256: return crc32c(b)|(0x43524332<<32)
  return rc(b)
print('hash: empty', hex(rc(b'')), '200 counting bytes', hex(rc(bytes(range(200)))))
print('RingChecksum: "123456789"', hex(ring_checksum(b'123456789')),
      '300 bytes i%256', hex(ring_checksum(bytes(i%256 for i in range(300)))))
